"""DAVRL's parameter budget and adapter size at ViT-B/32 shapes (random weights; nothing is downloaded).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_dual_attention_adapter.py

Prints the trainable parameters of the LoRA adapter (`tvr.methods.dual_attention.get_dual_attention_peft_model`), their share of the
CLIP model's parameters, and the size of the `adapter_model.safetensors` that training saves (LoRA + the carried
global tokens, fp32).
"""

import os
import tempfile

from tvr import DualAttentionConfig, DualAttentionModel
from tvr.methods.dual_attention import get_dual_attention_peft_model
from tvr.peft import save_adapter


def main() -> None:
    model = DualAttentionModel(DualAttentionConfig())
    peft_model = get_dual_attention_peft_model(model)
    trainable, _ = peft_model.get_nb_trainable_parameters()
    clip = sum(p.numel() for name, p in model.clip.named_parameters() if "lora_" not in name)
    with tempfile.TemporaryDirectory() as directory:
        save_adapter(peft_model, directory)
        size = os.path.getsize(os.path.join(directory, "adapter_model.safetensors"))
    print(f"trainable {trainable:,}; CLIP {clip:,}; share {100 * trainable / clip:.3f} %; "
          f"adapter_model.safetensors {size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
