"""The generative student on tiny models: a Qwen2 text LM (captions) and a LLaVA VLM (images)."""

import json

import pytest
import torch
from tiny import tiny_llava, tiny_qwen2_lm, tiny_qwen2_vl

from cotdistill.records import Entity, EntityAnswer, Example
from cotdistill.student.generative import (
    ChatItem,
    GenerativeConfig,
    GenerativeConfigError,
    GenerativeDataset,
    GenerativeFeaturizer,
    GenerativeTrainingConfig,
    add_lora,
    chat_items,
    check_quantization_runtime,
    collate,
    distill_loss,
    load_generative_student,
    load_processor,
    lora_target_modules,
    merge_student,
    pack,
    predict_generative,
    quantization_config,
    train_generative,
    unquantized_modules,
)

POSTS = [
    ("Barack Obama visits Paris", [(0, 2, "PER"), (3, 4, "LOC")]),
    ("Apple opens offices in London", [(0, 1, "ORG"), (4, 5, "LOC")]),
    ("Michelle Obama and Google", [(0, 2, "PER"), (3, 4, "ORG")]),
    ("the fox jumps near Berlin", [(4, 5, "LOC")]),
]
LABELS = ["LOC", "ORG", "PER"]


def examples(n=8, images=None):
    out = []
    for i in range(n):
        text, ents = POSTS[i % len(POSTS)]
        toks = tuple(text.split())
        gold = EntityAnswer(tuple(Entity(s, e, t, " ".join(toks[s:e])) for s, e, t in ents))
        image = images[i] if images else None
        out.append(Example(str(i), "mner", text, gold, toks, image, {"caption": "a man in a city"}))
    return out


RATIONALES = {"0": "Barack Obama is a person; Paris is a city.", "1": "Apple is a company in London."}


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    return tiny_qwen2_lm(tmp_path_factory.mktemp("lm"))


@pytest.fixture(scope="module")
def lm_wide(tmp_path_factory):
    # larger random weights: with std 0.02 a frozen lm_head caps the logits, and no adapter can fit anything
    return tiny_qwen2_lm(tmp_path_factory.mktemp("lm_wide"), initializer_range=0.3)


@pytest.fixture(scope="module")
def llava(tmp_path_factory):
    return tiny_llava(tmp_path_factory.mktemp("llava"))


def images(folder, n, size=(96, 64)):
    from PIL import Image

    paths = []
    for i in range(n):
        p = folder / f"{i}.jpg"
        Image.new("RGB", size, (40 * i % 255, 120, 200)).save(p)
        paths.append(str(p))
    return paths


# ------------------------------------------------------------------------------ LoRA and QLoRA targets


@pytest.mark.parametrize("kind", ["qwen2_vl", "qwen2_5_vl"])
def test_lora_targets_the_language_model_only(kind):
    model = tiny_qwen2_vl(kind)
    targets = lora_target_modules(model)
    assert targets and all(t.startswith("model.language_model.layers.") for t in targets)
    assert not any("visual" in t or "lm_head" in t for t in targets)
    suffixes = {t.rsplit(".", 1)[1] for t in targets}
    assert suffixes == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    if kind == "qwen2_5_vl":
        # why short names are not enough: the vision MLP reuses them
        assert any(n.endswith("visual.blocks.0.mlp.gate_proj") for n, _ in model.named_modules())
    peft_model = add_lora(model, GenerativeConfig(model="x", vision=True, lora_r=4))
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n and "language_model" in n for n in trainable)


def test_qlora_config_keeps_vision_and_head_unquantized():
    model = tiny_qwen2_vl("qwen2_5_vl")
    skip = unquantized_modules(model)
    assert "lm_head" in skip and "model.visual" in skip
    assert not any("language_model" in s for s in skip)
    cfg = GenerativeConfig(model="x", vision=True, quantization="4bit")
    bnb = quantization_config(cfg, model)
    assert bnb.load_in_4bit and bnb.bnb_4bit_quant_type == "nf4" and bnb.bnb_4bit_use_double_quant
    assert bnb.bnb_4bit_compute_dtype == torch.bfloat16
    assert set(skip) <= set(bnb.llm_int8_skip_modules)
    assert quantization_config(GenerativeConfig(model="x")) is None
    with pytest.raises(GenerativeConfigError, match="lora_r"):
        GenerativeConfig(model="x", quantization="4bit", lora_r=0)
    with pytest.raises(GenerativeConfigError, match="quantization"):
        GenerativeConfig(model="x", quantization="8bit")


def test_qlora_config_from_a_saved_model_builds_on_the_meta_device(llava):
    bnb = quantization_config(GenerativeConfig(model=llava, vision=True, quantization="4bit"))
    assert {"lm_head", "model.vision_tower", "model.multi_modal_projector"} <= set(bnb.llm_int8_skip_modules)


def test_qlora_training_needs_gpu_and_bitsandbytes(lm, tmp_path):
    try:
        check_quantization_runtime()
    except (ImportError, GenerativeConfigError) as err:
        with pytest.raises((ImportError, GenerativeConfigError)):
            train_generative(
                GenerativeConfig(model=lm, labels=LABELS, quantization="4bit"),
                GenerativeTrainingConfig(output_dir=str(tmp_path)),
                examples(2),
                examples(2),
            )
        pytest.skip(f"QLoRA training not run here: {err}")
    out = train_generative(
        GenerativeConfig(model=lm, labels=LABELS, quantization="4bit", max_new_tokens=4),
        GenerativeTrainingConfig(output_dir=str(tmp_path), epochs=1, batch_size=4),
        examples(4),
        examples(2),
    )
    assert out[2]


# -------------------------------------------------------------------------------------- the data


def test_loss_covers_the_response_only(lm):
    cfg = GenerativeConfig(model=lm, labels=LABELS, vision=False, use_caption=True)
    proc = load_processor(cfg)
    feat = GenerativeFeaturizer(cfg, proc)
    item = ChatItem(examples(1)[0], "answer", '{"entities": []}')
    enc = feat.encode(item)
    n = enc["prompt_length"]
    assert enc["labels"][:n] == [-100] * n
    response = proc.decode(enc["labels"][n:])
    assert response.startswith('{"entities": []}') and "<|im_end|>" in response
    prompt = proc.decode(enc["input_ids"][:n])
    assert "[answer]" in prompt and "Barack Obama visits Paris" in prompt and "a man in a city" in prompt
    rationale = feat.encode(ChatItem(examples(1)[0], "rationale", "why"))
    assert "[rationale]" in proc.decode(rationale["input_ids"][: rationale["prompt_length"]])


def test_chat_items_follow_alpha():
    ex = examples(2)
    assert [i.kind for i in chat_items(ex, RATIONALES, 0.5)] == ["answer", "rationale", "answer", "rationale"]
    assert [i.kind for i in chat_items(ex, RATIONALES, 1.0)] == ["answer", "answer"]
    assert [i.kind for i in chat_items(ex, RATIONALES, 0.0)] == ["rationale", "rationale"]
    assert json.loads(chat_items(ex, {}, 0.5)[0].target)["entities"][0] == {
        "text": "Barack Obama",
        "type": "PER",
    }


def _batch(lm, packed: bool):
    cfg = GenerativeConfig(model=lm, labels=LABELS, vision=False, packing=packed, max_length=512)
    proc = load_processor(cfg)
    ds = GenerativeDataset(GenerativeFeaturizer(cfg, proc), chat_items(examples(3), RATIONALES, 0.5))
    feats = pack(ds.encoded, 512) if packed else ds.encoded
    return collate(feats, proc.pad_token_id), len(ds.encoded)


def test_packed_rows_give_the_same_loss_as_padded_rows(lm):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(lm).eval()
    padded, n = _batch(lm, packed=False)
    packed, _ = _batch(lm, packed=True)
    assert packed["input_ids"].shape[0] < padded["input_ids"].shape[0] and "attention_mask" not in packed
    assert packed["seq_kind"].numel() == padded["seq_kind"].numel() == n
    with torch.no_grad():
        a, parts_a = distill_loss(model, padded, 0.5)
        b, parts_b = distill_loss(model, packed, 0.5)
    assert torch.allclose(a, b, atol=1e-5)
    assert torch.allclose(parts_a["rationale"], parts_b["rationale"], atol=1e-5)


def test_response_logits_match_the_full_forward_pass(lm):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(lm).eval()
    batch, _ = _batch(lm, packed=False)
    with torch.no_grad():
        loss, parts = distill_loss(model, batch, 0.5)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    tok = torch.nn.functional.cross_entropy(
        logits[:, :-1].transpose(1, 2), batch["labels"][:, 1:], reduction="none", ignore_index=-100
    )
    mask = batch["labels"][:, 1:] != -100
    per_row = (tok * mask).sum(1) / mask.sum(1)
    kinds = batch["seq_kind"]
    reference = 0.5 * per_row[kinds == 0].mean() + 0.5 * per_row[kinds == 1].mean()
    assert torch.allclose(loss, reference, atol=1e-5)
    assert torch.allclose(parts["answer"], per_row[kinds == 0].mean(), atol=1e-5)


def test_alpha_one_ignores_rationales(lm):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(lm).eval()
    batch, _ = _batch(lm, packed=False)
    with torch.no_grad():
        full, parts = distill_loss(model, batch, 1.0)
    assert torch.allclose(full, parts["answer"]) and "rationale" not in parts


# ------------------------------------------------------------------------------------------ training


def test_lora_training_changes_only_the_adapter_and_overfits(lm_wide, tmp_path):
    from transformers import AutoModelForCausalLM

    lm = lm_wide
    base = AutoModelForCausalLM.from_pretrained(lm)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    cfg = GenerativeConfig(model=lm, labels=LABELS, lora_r=8, lora_alpha=64, max_new_tokens=24)
    training = GenerativeTrainingConfig(
        output_dir=str(tmp_path / "out"), epochs=12, batch_size=4, learning_rate=2e-2, logging_steps=1, seed=0
    )
    model, proc, history = train_generative(cfg, training, examples(8), examples(4), RATIONALES, model=base)
    losses = [h["loss"] for h in history if "loss" in h]
    assert losses[-1] < 0.4 * losses[0], losses
    compared = set()
    for name, p in model.named_parameters():
        if "lora_" in name:
            continue
        key = name.replace("base_model.model.", "").replace(".base_layer", "")
        compared.add(key)
        assert torch.equal(p.detach(), before[key]), f"base weight {key} changed"
    assert compared == set(before)  # every base weight was compared, lm_head included
    assert any(h.get("eval_f1") is not None for h in history)

    # save -> load -> predict gives the same predictions as the trained model
    best = tmp_path / "out" / "best"
    assert (best / "adapter_config.json").is_file() and (best / "cotdistill_student.json").is_file()
    direct = predict_generative(model, proc, cfg, examples(4), progress=False)
    loaded, proc2, cfg2 = load_generative_student(best, device="cpu")
    again = predict_generative(loaded, proc2, cfg2, examples(4), progress=False)
    assert [p.raw for p in direct] == [p.raw for p in again]
    assert all(p.usage.completion_tokens > 0 for p in again)

    # merge: a plain model with the adapter folded in predicts the same
    merged = merge_student(best, tmp_path / "merged")
    m, proc3, cfg3 = load_generative_student(merged, device="cpu")
    assert not hasattr(m, "peft_config")
    assert [p.raw for p in predict_generative(m, proc3, cfg3, examples(4), progress=False)] == [
        p.raw for p in again
    ]
    with pytest.raises(FileExistsError):
        merge_student(best, tmp_path / "merged")


def test_resume_continues_the_step_count(lm, tmp_path, monkeypatch):
    import cotdistill.student.generative.train as gen

    cfg = GenerativeConfig(model=lm, labels=LABELS, lora_r=4, max_new_tokens=4)
    out = tmp_path / "out"
    first = GenerativeTrainingConfig(
        output_dir=str(out), epochs=1, batch_size=4, save_total_limit=3, logging_steps=1
    )
    train_generative(cfg, first, examples(8), examples(2))
    checkpoint = out / "checkpoint-2"
    assert checkpoint.is_dir()
    calls = []
    real = gen.distill_loss
    monkeypatch.setattr(gen, "distill_loss", lambda *a, **k: calls.append(1) or real(*a, **k))
    second = GenerativeTrainingConfig(
        output_dir=str(out),
        epochs=2,
        batch_size=4,
        save_total_limit=3,
        logging_steps=1,
        resume_from_checkpoint=str(checkpoint),
    )
    _, _, history = train_generative(
        GenerativeConfig(model=lm, labels=LABELS, lora_r=4, max_new_tokens=4),
        second,
        examples(8),
        examples(2),
    )
    assert len(calls) == 2  # steps 3 and 4 only: the first epoch is not trained again
    assert [h["step"] for h in history if "loss" in h] == [1, 2, 3, 4]
    assert (out / "checkpoint-4").is_dir()


def test_packing_trains_a_text_student(lm, tmp_path):
    cfg = GenerativeConfig(model=lm, labels=LABELS, lora_r=4, packing=True, max_length=512, max_new_tokens=4)
    training = GenerativeTrainingConfig(output_dir=str(tmp_path), epochs=1, batch_size=2, logging_steps=1)
    _, _, history = train_generative(cfg, training, examples(8), examples(2), RATIONALES)
    # 10 chat examples in a few packed rows: fewer optimizer steps than unpacked (5 at batch 2)
    assert max(h["step"] for h in history) < 5


# ----------------------------------------------------------------------------------- the VLM path


def test_vlm_student_reads_images_and_trains(llava, tmp_path):
    paths = images(tmp_path, 4)
    exs = examples(4, images=[paths[0], paths[1], str(tmp_path / "missing.jpg"), None])
    cfg = GenerativeConfig(model=llava, labels=LABELS, lora_r=4, max_new_tokens=6, max_length=300)
    proc = load_processor(cfg)
    assert cfg.vision is True
    feat = GenerativeFeaturizer(cfg, proc)
    enc = feat.encode(ChatItem(exs[0], "answer", "{}"))
    assert enc["image_tokens"] == 4 and enc["pixel_values"].shape == (1, 3, 28, 28)
    assert all(lab == -100 for lab in enc["labels"][: enc["prompt_length"]])
    no_image = feat.encode(ChatItem(exs[3], "answer", "{}"))
    assert no_image["image_tokens"] == 0 and "pixel_values" not in no_image
    assert "a man in a city" in proc.tokenizer.decode(no_image["input_ids"])  # caption stands in
    training = GenerativeTrainingConfig(output_dir=str(tmp_path / "out"), epochs=1, batch_size=2)
    model, proc, _ = train_generative(cfg, training, exs, exs[:2], RATIONALES)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and not any("vision_tower" in n or "projector" in n for n in trainable)
    preds = predict_generative(model, proc, cfg, exs, progress=False)
    assert [p.id for p in preds] == ["0", "1", "2", "3"]
    one_by_one = predict_generative(model, proc, cfg, exs, batch_size=1, progress=False)
    assert [p.raw for p in preds] == [p.raw for p in one_by_one]  # left padding and images line up


def test_images_that_do_not_fit_are_an_error_before_training(llava, tmp_path):
    paths = images(tmp_path, 2)
    exs = examples(2, images=paths)
    cfg = GenerativeConfig(model=llava, labels=LABELS, lora_r=4, max_length=64)
    with pytest.raises(GenerativeConfigError, match=r"exceed max_length=64.*image tokens.*never cut"):
        train_generative(cfg, GenerativeTrainingConfig(output_dir=str(tmp_path / "o")), exs, exs)


def test_images_are_resized_under_max_pixels(tmp_path):
    from cotdistill.student.generative import load_image

    (path,) = images(tmp_path, 1, size=(1000, 500))
    image = load_image(path, 100 * 100)
    assert image.size[0] * image.size[1] <= 100 * 100 and abs(image.size[0] / image.size[1] - 2) < 0.05
    assert load_image(str(tmp_path / "nope.jpg"), 10_000) is None


def test_qwen2_vl_student_trains_and_predicts(tmp_path, monkeypatch):
    """The Qwen2-VL path: image grids, per-token processor outputs, M-RoPE positions, LoRA off the vision tower."""
    import transformers
    from transformers import AutoTokenizer

    from cotdistill.run.demo.tiny import image_only_qwen2_vl_processor, tiny_qwen2_vl_teacher

    path = tiny_qwen2_vl_teacher(tmp_path / "qwen2vl")
    processor = image_only_qwen2_vl_processor(AutoTokenizer.from_pretrained(path))
    monkeypatch.setattr(transformers.AutoProcessor, "from_pretrained", lambda *a, **k: processor)
    exs = examples(4, images=[*images(tmp_path, 3), None])
    cfg = GenerativeConfig(model=path, labels=LABELS, lora_r=4, max_new_tokens=6, max_length=512)
    training = GenerativeTrainingConfig(
        output_dir=str(tmp_path / "out"), epochs=1, batch_size=2, logging_steps=1
    )
    model, proc, history = train_generative(cfg, training, exs, exs[:2], RATIONALES)
    assert cfg.vision is True and any("loss" in h for h in history)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and not any("visual" in n for n in trainable)
    batch = collate(
        [GenerativeDataset(GenerativeFeaturizer(cfg, proc), chat_items(exs[:2], {}, 1.0))[i] for i in (0, 1)],
        0,
    )
    assert (
        batch["image_grid_thw"].shape == (2, 3)
        and batch["mm_token_type_ids"].shape == batch["input_ids"].shape
    )
    preds = predict_generative(model, proc, cfg, exs, progress=False)
    assert [p.id for p in preds] == ["0", "1", "2", "3"] and all(p.usage.prompt_tokens > 0 for p in preds)
