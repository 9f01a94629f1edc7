"""Numbers about models: accuracy on a named split (one confusion matrix, COCO-style AP) and speed
against the alternatives (`rtseg bench`), each with the machine and date beside it."""
