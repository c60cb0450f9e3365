"""DAVRL (dual-attention, parameter-efficient): a frozen CLIP with global tokens, trained as a `peft` LoRA adapter
(`adapter.py`)."""

from ..registry import Method
from .adapter import dual_attention_lora_config, get_dual_attention_peft_model
from .configuration import DualAttentionConfig
from .modeling import DualAttentionModel, DualAttentionPreTrainedModel

METHOD = Method("DAVRL", "https://github.com/bzy-source/DAVRL", DualAttentionConfig, DualAttentionModel,
                converter=f"{__name__}.convert", adapter=get_dual_attention_peft_model)

__all__ = ["DualAttentionConfig", "DualAttentionModel", "DualAttentionPreTrainedModel", "dual_attention_lora_config",
           "get_dual_attention_peft_model"]
