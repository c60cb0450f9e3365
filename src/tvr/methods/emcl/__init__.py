"""EMCL-Net (Jin et al., 2022): expectation-maximisation contrastive learning over a shared compact basis."""

from ..registry import Method
from .configuration import EMCLConfig
from .modeling import EMCLModel, EMCLPreTrainedModel

METHOD = Method("EMCL-Net", "https://arxiv.org/abs/2211.11427", EMCLConfig, EMCLModel, converter=f"{__name__}.convert")

__all__ = ["EMCLConfig", "EMCLModel", "EMCLPreTrainedModel"]
