"""Model zoo: registered factories, the architecture spec artifacts store, and Hugging Face
transformer directories loaded as sentence encoders."""

from ._args import check_model_args
from ._hf import (
    POOLINGS,
    SentenceEncoder,
    check_hf_dir,
    cls_pooling,
    load_hf,
    mean_pooling,
)
from ._hf_save import layer_widths, save_hf
from ._registry import MODELS, arch_of, create_model, model_names
from ._resnet_cifar import CifarResNet
from ._seed_cnn import SeedCNN
from ._torchvision import InputAdapter, torchvision_classifiers

__all__ = [
    "MODELS",
    "POOLINGS",
    "CifarResNet",
    "InputAdapter",
    "SeedCNN",
    "SentenceEncoder",
    "arch_of",
    "check_hf_dir",
    "check_model_args",
    "cls_pooling",
    "create_model",
    "layer_widths",
    "load_hf",
    "mean_pooling",
    "model_names",
    "save_hf",
    "torchvision_classifiers",
]
