"""Column-major frozen weights on a CPU: the same numbers, the same training and answers, fused or not."""

from __future__ import annotations

import pytest

from tests.training.test_fused import loss_and_grads, lora_model, make_batch
from tunewiz.training.fused import fuse_projections
from tunewiz.training.layout import column_major_weights, is_column_major


@pytest.fixture
def batch(tiny_model):
    return make_batch(tiny_model)


def frozen_linear_weights(model):
    import torch

    return {name: module.weight for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and not module.weight.requires_grad}


def test_frozen_linear_weights_become_column_major_with_the_same_values(tiny_model):
    import torch

    model = lora_model(tiny_model)
    before = {name: weight.detach().clone() for name, weight in frozen_linear_weights(model).items()}
    lora = {name: p for name, p in model.named_parameters() if "lora_" in name}
    assert column_major_weights(model) == len({id(w) for w in frozen_linear_weights(model).values()})
    after = frozen_linear_weights(model)
    assert after and all(is_column_major(w) for w in after.values())
    for name, weight in after.items():
        assert torch.equal(weight, before[name]), name
    # the adapter is trained as it came: contiguous, as the optimizer and the saved adapter expect
    assert all(p.is_contiguous() for p in lora.values())
    assert column_major_weights(model) == len(after)  # again: nothing left to change, nothing broken


def test_column_major_and_fused_trains_and_answers_as_peft_does(tiny_model, batch):
    import torch

    plain, moved = lora_model(tiny_model), lora_model(tiny_model)
    column_major_weights(moved)
    assert fuse_projections(moved) == 4
    attention = moved.get_base_model().model.layers[0].self_attn
    # fused, the weights stay column-major and the projections' weights stay views of the fused one
    assert is_column_major(attention.fused_weight) and is_column_major(attention.k_proj.base_layer.weight)
    assert attention.k_proj.base_layer.weight.untyped_storage().data_ptr() == \
        attention.fused_weight.untyped_storage().data_ptr()

    loss, grads = loss_and_grads(plain, batch)
    moved_loss, moved_grads = loss_and_grads(moved, batch)
    assert moved_loss == pytest.approx(loss, rel=1e-5)
    assert moved_grads.keys() == grads.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(moved_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)

    # the recall check: adapter merged into the column-major weights, greedy decoding, unmerged after
    ids = batch[0]["input_ids"][:, :12]
    with torch.no_grad():
        expected = plain.generate(input_ids=ids, max_new_tokens=8, do_sample=False, pad_token_id=0)
        logits = plain(input_ids=ids).logits
        moved.merge_adapter()
        assert is_column_major(attention.k_proj.base_layer.weight)  # merged in place
        assert torch.equal(moved.generate(input_ids=ids, max_new_tokens=8, do_sample=False, pad_token_id=0),
                           expected)
        moved.unmerge_adapter()
        torch.testing.assert_close(moved(input_ids=ids).logits, logits, rtol=1e-4, atol=1e-5)
