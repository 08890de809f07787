"""Line-art extraction methods (XDoG, dilate, Canny, high-pass, sketchKeras, ...): `pipe extract`.

Not built yet; it will read `prepared.parquet` and the images under `prepared/`.
"""
