// Character4D splat player: a small WebGL2 renderer of 3D Gaussian splats over time.
// Written for the Character4D toolkit (MIT licence, see the repository's LICENSE); no third-party code.
//
// Each Gaussian is drawn as a screen-space quad covering 3 standard deviations of its projected
// covariance (the EWA splatting approximation of Zwicker et al. 2001, as used by 3D Gaussian Splatting,
// Kerbl et al. 2023), alpha-blended back to front after a per-view depth sort (a 16-bit counting sort).
// Colours are the degree-0 spherical-harmonic term only; view-dependent terms are not played.
(function () {
  "use strict";
  var statusEl = document.getElementById("status");
  var started = performance.now();
  function report(extra) {
    var s = { ready: false };
    for (var k in extra) s[k] = extra[k];
    s.load_ms = Math.round(performance.now() - started);  // script start -> first frame drawn
    s.since_navigation_ms = Math.round(performance.now());  // page request -> first frame (parsing included)
    statusEl.textContent = JSON.stringify(s);
    document.body.setAttribute("data-state", s.ready ? "ready" : (s.error ? "error" : "fallback"));
  }
  function fallback(reason) {
    document.getElementById("player").style.display = "none";
    document.getElementById("fallback").style.display = "block";
    report({ webgl: false, reason: reason });
  }
  var params = new URLSearchParams(window.location.search);
  if (params.get("embed")) document.body.className = "embed";  // the canvas alone, at the page's corner
  var meta = JSON.parse(document.getElementById("meta").textContent);
  var canvas = document.getElementById("canvas");
  var gl = params.get("nowebgl") ? null : canvas.getContext("webgl2", { antialias: false, preserveDrawingBuffer: true, premultipliedAlpha: true });
  if (!gl) { fallback("WebGL2 is not available"); return; }

  // ---- data -------------------------------------------------------------------------------------
  var raw = atob(document.getElementById("data").textContent.trim());
  var buf = new Uint8Array(raw.length);
  for (var b = 0; b < raw.length; b++) buf[b] = raw.charCodeAt(b);
  var N = meta.num_gaussians, F = meta.num_frames, seg = meta.segments;
  var posQ = new Uint16Array(buf.buffer, seg.positions[0], F * N * 3);
  var sclQ = new Uint8Array(buf.buffer, seg.log_scales[0], F * N * 3);
  var rotQ = new Int8Array(buf.buffer, seg.quats[0], F * N * 4);
  var colQ = new Uint8Array(buf.buffer, seg.colors[0], seg.colors[1]);
  var lo = meta.bbox_min, hi = meta.bbox_max, sLo = meta.log_scale_range[0], sHi = meta.log_scale_range[1];

  var TEXW = 1024, rows = Math.ceil(N / TEXW);
  var centers = new Float32Array(N * 3);
  var gaussTex = new Float32Array(TEXW * 3 * rows * 4);
  var depthKeys = new Uint32Array(N), counts = new Uint32Array(65536), order = new Uint32Array(N);

  // Centres and 3D covariances (R S S^T R^T) of frame f into the float texture.
  function loadFrame(f) {
    var p0 = f * N * 3, q0 = f * N * 4;
    for (var i = 0; i < N; i++) {
      var x = lo[0] + (hi[0] - lo[0]) * posQ[p0 + 3 * i] / 65535;
      var y = lo[1] + (hi[1] - lo[1]) * posQ[p0 + 3 * i + 1] / 65535;
      var z = lo[2] + (hi[2] - lo[2]) * posQ[p0 + 3 * i + 2] / 65535;
      centers[3 * i] = x; centers[3 * i + 1] = y; centers[3 * i + 2] = z;
      var sx = Math.exp(sLo + (sHi - sLo) * sclQ[p0 + 3 * i] / 255);
      var sy = Math.exp(sLo + (sHi - sLo) * sclQ[p0 + 3 * i + 1] / 255);
      var sz = Math.exp(sLo + (sHi - sLo) * sclQ[p0 + 3 * i + 2] / 255);
      var w = rotQ[q0 + 4 * i], qx = rotQ[q0 + 4 * i + 1], qy = rotQ[q0 + 4 * i + 2], qz = rotQ[q0 + 4 * i + 3];
      var n = Math.sqrt(w * w + qx * qx + qy * qy + qz * qz) || 1; w /= n; qx /= n; qy /= n; qz /= n;
      var r00 = 1 - 2 * (qy * qy + qz * qz), r01 = 2 * (qx * qy - w * qz), r02 = 2 * (qx * qz + w * qy);
      var r10 = 2 * (qx * qy + w * qz), r11 = 1 - 2 * (qx * qx + qz * qz), r12 = 2 * (qy * qz - w * qx);
      var r20 = 2 * (qx * qz - w * qy), r21 = 2 * (qy * qz + w * qx), r22 = 1 - 2 * (qx * qx + qy * qy);
      // M = R S; covariance = M M^T
      var m00 = r00 * sx, m01 = r01 * sy, m02 = r02 * sz, m10 = r10 * sx, m11 = r11 * sy, m12 = r12 * sz;
      var m20 = r20 * sx, m21 = r21 * sy, m22 = r22 * sz;
      var row = Math.floor(i / TEXW), col = (i % TEXW) * 3, t = (row * TEXW * 3 + col) * 4;
      gaussTex[t] = x; gaussTex[t + 1] = y; gaussTex[t + 2] = z; gaussTex[t + 3] = 1;
      gaussTex[t + 4] = m00 * m00 + m01 * m01 + m02 * m02; gaussTex[t + 5] = m00 * m10 + m01 * m11 + m02 * m12;
      gaussTex[t + 6] = m00 * m20 + m01 * m21 + m02 * m22; gaussTex[t + 7] = 0;
      gaussTex[t + 8] = m10 * m10 + m11 * m11 + m12 * m12; gaussTex[t + 9] = m10 * m20 + m11 * m21 + m12 * m22;
      gaussTex[t + 10] = m20 * m20 + m21 * m21 + m22 * m22; gaussTex[t + 11] = 0;
    }
    gl.bindTexture(gl.TEXTURE_2D, gTex);
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA32F, TEXW * 3, rows, 0, gl.RGBA, gl.FLOAT, gaussTex);
    var cf = meta.colors_per_frame ? f : 0;
    var colors = new Uint8Array(TEXW * rows * 4);
    colors.set(colQ.subarray(cf * N * 4, (cf + 1) * N * 4));
    gl.bindTexture(gl.TEXTURE_2D, cTex);
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA8, TEXW, rows, 0, gl.RGBA, gl.UNSIGNED_BYTE, colors);
  }

  // ---- GL setup ---------------------------------------------------------------------------------
  var vs = "#version 300 es\nprecision highp float; precision highp int;\n" +
    "uniform highp sampler2D uGauss; uniform highp sampler2D uColor;\n" +
    "uniform mat4 uView, uProj; uniform vec2 uFocal, uViewport;\n" +
    "in vec2 aCorner; in uint aIndex; out vec4 vColor; out vec2 vPos;\n" +
    "void main() {\n" +
    "  int i = int(aIndex); ivec2 base = ivec2((i % 1024) * 3, i / 1024);\n" +
    "  vec4 t0 = texelFetch(uGauss, base, 0), t1 = texelFetch(uGauss, base + ivec2(1, 0), 0), t2 = texelFetch(uGauss, base + ivec2(2, 0), 0);\n" +
    "  vec4 cam = uView * vec4(t0.xyz, 1.0); vec4 clip = uProj * cam; float lim = 1.3 * clip.w;\n" +
    "  if (cam.z > -0.05 || abs(clip.x) > lim || abs(clip.y) > lim) { gl_Position = vec4(0.0, 0.0, 2.0, 1.0); return; }\n" +
    "  mat3 V = mat3(t1.x, t1.y, t1.z, t1.y, t2.x, t2.y, t1.z, t2.y, t2.z);\n" +
    "  float z = -cam.z;\n" +
    // Jacobian of the perspective projection (OpenGL camera looking down -z), image v pointing up.
    "  mat3 J = mat3(uFocal.x / z, 0.0, 0.0, 0.0, uFocal.y / z, 0.0, uFocal.x * cam.x / (z * z), uFocal.y * cam.y / (z * z), 0.0);\n" +
    "  mat3 T = J * mat3(uView); mat3 C = T * V * transpose(T);\n" +
    // A 0.3 px^2 low-pass keeps sub-pixel Gaussians visible (as in 3DGS).
    "  float a = C[0][0] + 0.3, bb = C[0][1], d = C[1][1] + 0.3;\n" +
    "  float mid = 0.5 * (a + d), rad = length(vec2(0.5 * (a - d), bb));\n" +
    "  float l1 = mid + rad, l2 = max(mid - rad, 0.1);\n" +
    "  vec2 e1 = vec2(bb, l1 - a); e1 = dot(e1, e1) < 1e-12 ? vec2(1.0, 0.0) : normalize(e1);\n" +
    "  vec2 major = 3.0 * sqrt(l1) * e1, minor = 3.0 * sqrt(l2) * vec2(e1.y, -e1.x);\n" +
    "  vColor = texelFetch(uColor, ivec2(i % 1024, i / 1024), 0); vPos = 3.0 * aCorner;\n" +
    "  vec2 ndc = clip.xy / clip.w + (aCorner.x * major + aCorner.y * minor) * 2.0 / uViewport;\n" +
    "  gl_Position = vec4(ndc, clamp(clip.z / clip.w, -1.0, 1.0), 1.0);\n" +
    "}\n";
  var fs = "#version 300 es\nprecision highp float;\nin vec4 vColor; in vec2 vPos; out vec4 outColor;\n" +
    "void main() { float alpha = vColor.a * exp(-0.5 * dot(vPos, vPos)); if (alpha < 1.0 / 255.0) discard;\n" +
    "  outColor = vec4(vColor.rgb * alpha, alpha); }\n";
  function shader(type, src) {
    var s = gl.createShader(type); gl.shaderSource(s, src); gl.compileShader(s);
    if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(s));
    return s;
  }
  var prog = gl.createProgram();
  try {
    gl.attachShader(prog, shader(gl.VERTEX_SHADER, vs)); gl.attachShader(prog, shader(gl.FRAGMENT_SHADER, fs));
    gl.linkProgram(prog);
    if (!gl.getProgramParameter(prog, gl.LINK_STATUS)) throw new Error(gl.getProgramInfoLog(prog));
  } catch (err) { fallback("shader error: " + err.message); return; }
  gl.useProgram(prog);
  var vao = gl.createVertexArray(); gl.bindVertexArray(vao);
  var cornerBuf = gl.createBuffer(); gl.bindBuffer(gl.ARRAY_BUFFER, cornerBuf);
  gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([-1, -1, 1, -1, -1, 1, 1, 1]), gl.STATIC_DRAW);
  var aCorner = gl.getAttribLocation(prog, "aCorner");
  gl.enableVertexAttribArray(aCorner); gl.vertexAttribPointer(aCorner, 2, gl.FLOAT, false, 0, 0);
  var indexBuf = gl.createBuffer(); gl.bindBuffer(gl.ARRAY_BUFFER, indexBuf);
  var aIndex = gl.getAttribLocation(prog, "aIndex");
  gl.enableVertexAttribArray(aIndex); gl.vertexAttribIPointer(aIndex, 1, gl.UNSIGNED_INT, 0, 0);
  gl.vertexAttribDivisor(aIndex, 1);
  function makeTex(unit) {
    var t = gl.createTexture(); gl.activeTexture(gl.TEXTURE0 + unit); gl.bindTexture(gl.TEXTURE_2D, t);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.NEAREST); gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.NEAREST);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE); gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE);
    return t;
  }
  var gTex = makeTex(0), cTex = makeTex(1);
  gl.uniform1i(gl.getUniformLocation(prog, "uGauss"), 0); gl.uniform1i(gl.getUniformLocation(prog, "uColor"), 1);
  var uView = gl.getUniformLocation(prog, "uView"), uProj = gl.getUniformLocation(prog, "uProj");
  var uFocal = gl.getUniformLocation(prog, "uFocal"), uViewport = gl.getUniformLocation(prog, "uViewport");
  gl.disable(gl.DEPTH_TEST); gl.enable(gl.BLEND);
  gl.blendFunc(gl.ONE, gl.ONE_MINUS_SRC_ALPHA);  // premultiplied, back to front

  // ---- camera: an orbit about the target, azimuth from -Y towards +X (the Character4D rig) ---------
  var cam = { az: parseFloat(params.get("az") || meta.camera.azimuth_deg), el: parseFloat(params.get("el") || meta.camera.elevation_deg),
              r: parseFloat(params.get("r") || meta.camera.radius), target: meta.camera.target, fov: meta.camera.fov_deg };
  function viewMatrix() {
    var a = cam.az * Math.PI / 180, e = cam.el * Math.PI / 180, t = cam.target;
    var eye = [t[0] + cam.r * Math.sin(a) * Math.cos(e), t[1] - cam.r * Math.cos(a) * Math.cos(e), t[2] + cam.r * Math.sin(e)];
    var f = [t[0] - eye[0], t[1] - eye[1], t[2] - eye[2]], fl = Math.hypot(f[0], f[1], f[2]);
    f = [f[0] / fl, f[1] / fl, f[2] / fl];
    var s = [f[1], -f[0], 0], sl = Math.hypot(s[0], s[1]) || 1; s = [s[0] / sl, s[1] / sl, 0];  // f x Z
    var u = [s[1] * f[2] - s[2] * f[1], s[2] * f[0] - s[0] * f[2], s[0] * f[1] - s[1] * f[0]];
    var dot = function (p, q) { return p[0] * q[0] + p[1] * q[1] + p[2] * q[2]; };
    return new Float32Array([s[0], u[0], -f[0], 0, s[1], u[1], -f[1], 0, s[2], u[2], -f[2], 0,
                             -dot(s, eye), -dot(u, eye), dot(f, eye), 1]);  // column-major
  }
  function sortBackToFront(view) {
    var vz0 = view[2], vz1 = view[6], vz2 = view[10], vz3 = view[14], mn = Infinity, mx = -Infinity, i;
    var zs = new Float32Array(N);
    for (i = 0; i < N; i++) { var zc = vz0 * centers[3 * i] + vz1 * centers[3 * i + 1] + vz2 * centers[3 * i + 2] + vz3; zs[i] = zc; if (zc < mn) mn = zc; if (zc > mx) mx = zc; }
    var scale = 65535 / Math.max(mx - mn, 1e-9);
    counts.fill(0);
    for (i = 0; i < N; i++) { depthKeys[i] = Math.floor((zs[i] - mn) * scale); counts[depthKeys[i]]++; }
    for (i = 1; i < 65536; i++) counts[i] += counts[i - 1];
    // camera z is negative in front: most negative (farthest) first
    for (i = N - 1; i >= 0; i--) order[--counts[depthKeys[i]]] = i;
    gl.bindBuffer(gl.ARRAY_BUFFER, indexBuf); gl.bufferData(gl.ARRAY_BUFFER, order, gl.DYNAMIC_DRAW);
  }
  function draw() {
    var w = canvas.width, h = canvas.height, view = viewMatrix();
    var fy = h / (2 * Math.tan(cam.fov * Math.PI / 360)), fx = fy, near = 0.05, far = 100;
    var proj = new Float32Array([2 * fx / w, 0, 0, 0, 0, 2 * fy / h, 0, 0, 0, 0, -(far + near) / (far - near), -1, 0, 0, -2 * far * near / (far - near), 0]);
    sortBackToFront(view);
    gl.viewport(0, 0, w, h); gl.clearColor(1, 1, 1, 1); gl.clear(gl.COLOR_BUFFER_BIT);
    gl.uniformMatrix4fv(uView, false, view); gl.uniformMatrix4fv(uProj, false, proj);
    gl.uniform2f(uFocal, fx, fy); gl.uniform2f(uViewport, w, h);
    gl.drawArraysInstanced(gl.TRIANGLE_STRIP, 0, 4, N);
  }

  // ---- controls ---------------------------------------------------------------------------------
  var slider = document.getElementById("time"), label = document.getElementById("timelabel"), play = document.getElementById("play");
  slider.max = String(F - 1);
  var frame = Math.max(0, Math.min(F - 1, parseInt(params.get("frame") || "0", 10) || 0));
  function setFrame(f) { frame = f; slider.value = String(f); label.textContent = "frame " + f + " / " + (F - 1); loadFrame(f); draw(); }
  slider.addEventListener("input", function () { setFrame(parseInt(slider.value, 10)); });
  var timer = null;
  play.addEventListener("click", function () {
    if (timer) { clearInterval(timer); timer = null; play.textContent = "play"; return; }
    play.textContent = "pause";
    timer = setInterval(function () { setFrame((frame + 1) % F); }, 1000 / meta.fps);
  });
  var drag = null;
  canvas.addEventListener("pointerdown", function (ev) { drag = [ev.clientX, ev.clientY]; canvas.setPointerCapture(ev.pointerId); });
  canvas.addEventListener("pointerup", function () { drag = null; });
  canvas.addEventListener("pointermove", function (ev) {
    if (!drag) return;
    cam.az -= (ev.clientX - drag[0]) * 0.4; cam.el = Math.max(-89, Math.min(89, cam.el + (ev.clientY - drag[1]) * 0.4));
    drag = [ev.clientX, ev.clientY]; draw();
  });
  canvas.addEventListener("wheel", function (ev) { ev.preventDefault(); cam.r = Math.max(0.3, cam.r * Math.exp(ev.deltaY * 0.001)); draw(); }, { passive: false });

  setFrame(frame);
  report({ ready: true, webgl: true, frame: frame, num_frames: F, num_gaussians: N, azimuth_deg: cam.az });
})();
