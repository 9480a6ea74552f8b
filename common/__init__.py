"""deep-landmark library: list files, boxes, crops, the net table, cascade inference,
evaluation and Caffe log parsing. Nothing here imports dataset/, model/ or webapp/."""
