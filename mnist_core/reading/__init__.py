"""The read path: a drawing or an image file turned into MNIST's format, read by the models,
calibrated and checked for being a digit at all; and the Look inside views. Nothing here trains,
runs jobs or parses the command line."""
