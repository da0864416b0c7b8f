"""The rhythm classifier (a ResNet-style 1D CNN) and the experiments that train it."""
