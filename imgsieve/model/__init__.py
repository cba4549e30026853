"""The model lifecycle: load labelled images, build and train a ResNet50 classifier, evaluate, export."""
