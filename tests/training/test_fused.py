"""Fused q/k/v and gate/up projections give the loss and gradients PEFT's own LoRA layers give."""

from __future__ import annotations

import pytest

from tunewiz.training import data as D
from tunewiz.training.fused import fuse_projections
from tunewiz.training.loss import answer_loss


def lora_model(tiny_model, dropout: float = 0.0, dora: bool = False, targets="all-linear"):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    torch.manual_seed(1)  # the same LoRA A weights in every model built
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=dropout, target_modules=targets,
                                             use_dora=dora, task_type="CAUSAL_LM"))
    with torch.no_grad():  # B starts at zero; random B makes the adapter's part of the output count
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    return model


def make_batch(model_folder):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_folder)
    records = [{"question": "What is " + "very " * n + "odd?", "answer": "It is odd " * (n + 2)} for n in (1, 6, 3)]
    examples = D.tokenize_records(records, tokenizer, "chatml", "You answer.", 512).examples
    collated = D.collate_flat(examples, 1, tokenizer.pad_token_id or 0)
    return collated, D.answer_tokens(collated)


@pytest.fixture
def batch(tiny_model):
    return make_batch(tiny_model)


def loss_and_grads(model, batch):
    collated, items = batch
    model.zero_grad(set_to_none=True)
    loss = answer_loss(model, dict(collated), items, by_index=True)
    loss.backward()
    return float(loss.detach()), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def assert_fused_trains_as_plain(plain, fused, batch, rel: float, rtol: float, atol: float):
    """Fusing keeps the state_dict's keys, holds the base weights once, and gives the plain model's loss and
    gradients."""
    import torch

    keys = set(fused.state_dict())
    # 2 layers: q/k/v and gate/up in each
    assert fuse_projections(fused) == 4
    assert set(fused.state_dict()) == keys  # the adapter and checkpoints save as before
    attention = fused.get_base_model().model.layers[0].self_attn
    # the base weights are views of one concatenated weight, not a second copy
    assert attention.k_proj.base_layer.weight.data_ptr() > attention.q_proj.base_layer.weight.data_ptr()
    assert attention.k_proj.base_layer.weight.untyped_storage().data_ptr() == \
        attention.q_proj.base_layer.weight.untyped_storage().data_ptr()
    loss, grads = loss_and_grads(plain, batch)
    fused_loss, fused_grads = loss_and_grads(fused, batch)
    assert fused_loss == pytest.approx(loss, rel=rel)
    assert fused_grads.keys() == grads.keys() and any("gate_proj.lora_A" in n for n in grads)
    for name, grad in grads.items():
        torch.testing.assert_close(fused_grads[name], grad, rtol=rtol, atol=atol, msg=name)


def test_fused_projections_train_as_peft_does(tiny_model, batch):
    assert_fused_trains_as_plain(lora_model(tiny_model), lora_model(tiny_model), batch, rel=1e-5, rtol=1e-4,
                                 atol=1e-6)


def test_fused_projections_follow_disabled_adapters(tiny_model, batch):
    import torch

    plain, fused = lora_model(tiny_model), lora_model(tiny_model)
    fuse_projections(fused)
    collated, _ = batch
    with torch.no_grad():
        with_lora = fused(input_ids=collated["input_ids"]).logits
        with plain.disable_adapter(), fused.disable_adapter():
            base, fused_base = plain(input_ids=collated["input_ids"]).logits, fused(input_ids=collated["input_ids"]).logits
    torch.testing.assert_close(fused_base, base)
    assert not torch.allclose(with_lora, base, atol=1e-3)


def test_dropout_and_dora_keep_peft_layers(tiny_model):
    # each projection draws its own dropout mask in PEFT; a shared one would train differently
    assert fuse_projections(lora_model(tiny_model, dropout=0.1)) == 0
    assert fuse_projections(lora_model(tiny_model, dora=True)) == 0  # DoRA scales each projection's weight


def test_groups_with_a_projection_left_without_lora_stay_as_they_are(tiny_model):
    # hyperparameters.target_modules naming some projections: a group with a plain nn.Linear is not fused
    assert fuse_projections(lora_model(tiny_model, targets=["q_proj", "v_proj"])) == 0
    assert fuse_projections(lora_model(tiny_model, targets=["q_proj", "k_proj", "v_proj", "o_proj"])) == 2


def test_fused_projections_follow_a_merged_adapter(tiny_model, batch):
    # the recall check merges the adapter into the weights on fp32 runs and unmerges it after
    import torch

    plain, fused = lora_model(tiny_model), lora_model(tiny_model)
    fuse_projections(fused)
    ids = batch[0]["input_ids"]
    with torch.no_grad():
        expected = plain(input_ids=ids).logits
        attention = fused.get_base_model().model.layers[0].self_attn
        before = attention.fused_weight.clone()
        fused.merge_adapter()
        # merged in place: the fused weight holds the merged weights, one matmul for the group as in training
        assert not torch.equal(attention.fused_weight, before)
        torch.testing.assert_close(attention.fused_weight, torch.cat(
            [getattr(attention, name).base_layer.weight for name in ("q_proj", "k_proj", "v_proj")]))
        torch.testing.assert_close(fused(input_ids=ids).logits, expected, rtol=1e-4, atol=1e-5)
        fused.unmerge_adapter()
        torch.testing.assert_close(fused(input_ids=ids).logits, expected, rtol=1e-4, atol=1e-5)
        # a safe merge: PEFT 0.21 puts new weights in place of the views (each projection then runs on its
        # own, or the fused weight would still be the unmerged one), PEFT 0.22 writes into them
        for module in fused.modules():
            if hasattr(module, "lora_A") and hasattr(module, "merge"):
                module.merge(safe_merge=True)
        torch.testing.assert_close(fused(input_ids=ids).logits, expected, rtol=1e-4, atol=1e-5)


def test_fused_projections_generate_as_peft_does(tiny_model, batch):
    # the recall check decodes greedily through the KV cache with the training model
    import torch

    plain, fused = lora_model(tiny_model), lora_model(tiny_model)
    fuse_projections(fused)
    ids = batch[0]["input_ids"][:, :12]
    with torch.no_grad():
        expected = plain.generate(input_ids=ids, max_new_tokens=8, do_sample=False, pad_token_id=0)
        assert torch.equal(fused.generate(input_ids=ids, max_new_tokens=8, do_sample=False, pad_token_id=0), expected)


def test_fused_4bit_projections_train_as_peft_does(tmp_path, smollm2_tokenizer, tiny_model_builder):
    """QLoRA: the packed 4-bit weights concatenated (the originals become views), their nested block scales
    unnested; the fused matmul dequantizes the values each projection would (bitsandbytes' CPU backend)."""
    pytest.importorskip("bitsandbytes", reason="the [test] extra installs it")
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    folder = tiny_model_builder(tmp_path / "tiny64", smollm2_tokenizer, hidden=64)  # 4-bit blocks of 64

    def qlora_model():
        quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                          bnb_4bit_compute_dtype=torch.bfloat16)
        model = AutoModelForCausalLM.from_pretrained(folder, quantization_config=quantization, device_map={"": "cpu"},
                                                     dtype=torch.float32)
        torch.manual_seed(1)
        model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules="all-linear",
                                                 task_type="CAUSAL_LM"))
        with torch.no_grad():
            for name, param in model.named_parameters():
                if "lora_B" in name:
                    param.normal_(0, 0.5)
        return model

    batch = make_batch(folder)
    collated, _ = batch
    plain, fused = qlora_model(), qlora_model()
    assert_fused_trains_as_plain(plain, fused, batch, rel=1e-4, rtol=2e-2, atol=1e-4)
    assert fused.get_base_model().model.layers[0].self_attn.fused_quant_state is not None
    with torch.no_grad(), plain.disable_adapter(), fused.disable_adapter():
        torch.testing.assert_close(fused(input_ids=collated["input_ids"]).logits,
                                   plain(input_ids=collated["input_ids"]).logits)
