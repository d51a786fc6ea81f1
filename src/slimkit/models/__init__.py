"""Model zoo: registered factories and the architecture spec artifacts store."""

from ._registry import MODELS, arch_of, create_model, model_names
from ._resnet_cifar import CifarResNet
from ._seed_cnn import SeedCNN
from ._torchvision import InputAdapter, torchvision_classifiers

__all__ = [
    "MODELS",
    "CifarResNet",
    "InputAdapter",
    "SeedCNN",
    "arch_of",
    "create_model",
    "model_names",
    "torchvision_classifiers",
]
