"""character4d: render stylised characters x motions into 21-view webdataset shards."""

__version__ = "0.1.0"
