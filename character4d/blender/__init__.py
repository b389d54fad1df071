"""Blender (bpy) layer of character4d. Everything that imports bpy lives here."""
