"""Encoder students: a token tagger over the post's words, optionally reading the teacher's CoT knowledge.

Input to the encoder is the post's words as the first segment and, as the second segment, the context
(image caption and/or the teacher's knowledge text). Only the first sub-token of each post word carries a
label; context tokens are never labelled and never predicted. Truncation cuts the context, never the post.

Teacher tags: the teacher's parsed answer (its entities or attribute values, aligned to the post's words)
can also be read as a learned tag embedding added to the input embedding of every sub-token of each post
word. It is part of the knowledge view: the student learns how far to trust each of the teacher's tags, at
the cost of a short sequence instead of a long knowledge segment.

Conditional prompt distillation: alongside the view with knowledge, a text-only view (the post plus a few
learnable prompt vectors after ``[CLS]``) is trained on the gold labels and to match the knowledge view's
label distribution (KL at a temperature), so the student runs without a teacher at test time. With
``conditional_prompt`` the prompt is conditioned on the post, as the CoT prompt distillation paper has it:
a small meta-network of the post's mean input embedding shifts every prompt vector (after CoCoOp).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from cotdistill.models import from_pretrained
from cotdistill.records import (
    Answer,
    AttributeAnswer,
    AttributeValue,
    Entity,
    EntityAnswer,
    Example,
    Prediction,
    Relation,
    RelationAnswer,
    Usage,
)
from cotdistill.student import StudentConfigError, read_student_config, save_student_config
from cotdistill.student.config import EncoderConfig
from cotdistill.student.crf import CRF, pack_labelled
from cotdistill.student.encoder_data import (
    MARKERS,
    VIEWS,
    EncoderDataset,
    EncoderFeaturizer,
    bio_tags,
    collate,
    task_tokens,
)
from cotdistill.tags import tags_to_spans

logger = logging.getLogger(__name__)


class EncoderTagger(nn.Module):
    """Encoder + token classification head (+ optional CRF, + optional prompt vectors for the plain view)."""

    def __init__(self, config: EncoderConfig, encoder: nn.Module | None = None):
        super().__init__()
        from transformers import AutoModel

        self.config = config
        self.encoder = (
            encoder
            if encoder is not None
            else from_pretrained(
                AutoModel, config.model, dtype=torch.float32, trust_remote_code=config.trust_remote_code
            )  # fp32 master weights; bf16 comes from the Trainer
        )
        hidden = self.encoder.config.hidden_size
        if (
            config.vocab_size is not None
            and config.vocab_size != self.encoder.get_input_embeddings().weight.shape[0]
        ):
            self.encoder.resize_token_embeddings(config.vocab_size)  # the entity-marker tokens
        if config.lora_r > 0:
            from peft import LoraConfig, get_peft_model

            lora = LoraConfig(
                r=config.lora_r,
                lora_alpha=config.lora_alpha,
                lora_dropout=config.lora_dropout,
                target_modules=config.lora_target_modules,
            )
            self.encoder = get_peft_model(self.encoder, lora)
        num = len(config.bio_labels)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(hidden, num)
        self.crf = CRF(num) if config.crf else None
        self.tag_embeddings = None
        if config.teacher_tags:
            # 0: no teacher tag (context, special tokens, padding, a post without an answer); 1 + label id.
            self.tag_embeddings = nn.Embedding(num + 1, hidden, padding_idx=0)
            nn.init.normal_(
                self.tag_embeddings.weight, std=getattr(self.encoder.config, "initializer_range", 0.02)
            )
            with torch.no_grad():
                self.tag_embeddings.weight[0].zero_()
        self.aux_head = nn.Linear(hidden, num) if config.aux_teacher_tags else None
        self.prompt = None
        if config.conditional_distillation:
            emb = self.encoder.get_input_embeddings().weight
            # Start the prompt vectors at real token embeddings, so the plain view starts in-distribution.
            init = emb[
                torch.randint(
                    0, emb.shape[0], (config.prompt_length,), generator=torch.Generator().manual_seed(0)
                )
            ]
            self.prompt = nn.Parameter(init.detach().clone())
        # conditional_prompt: a small meta-network shifts every prompt vector by a function of the post (its
        # mean input embedding), so the prompt depends on the input; it starts at zero (the plain prompt).
        self.prompt_net = None
        if config.conditional_distillation and config.conditional_prompt:
            width = max(hidden // 16, 8)
            self.prompt_net = nn.Sequential(nn.Linear(hidden, width), nn.ReLU(), nn.Linear(width, hidden))
            nn.init.zeros_(self.prompt_net[2].weight)
            nn.init.zeros_(self.prompt_net[2].bias)

    def emissions(
        self,
        input_ids,
        attention_mask,
        token_type_ids=None,
        prompt: bool = False,
        teacher_tag_ids=None,
        hidden_out: list | None = None,
    ) -> torch.Tensor:
        """Per-position label scores. With ``prompt``, the prompt vectors are inserted after the first token
        and their positions removed again from the output, so positions match ``input_ids``. With
        ``teacher_tag_ids``, the teacher's tag embeddings are added to the input embeddings."""
        use_prompt = prompt and self.prompt is not None
        kwargs = {"attention_mask": attention_mask, "token_type_ids": token_type_ids}
        if not use_prompt and (teacher_tag_ids is None or self.tag_embeddings is None):
            kwargs["input_ids"] = input_ids
        else:
            embeds = self.encoder.get_input_embeddings()(input_ids)
            if teacher_tag_ids is not None and self.tag_embeddings is not None:
                embeds = embeds + self.tag_embeddings(teacher_tag_ids).to(embeds.dtype)
            if use_prompt:
                p = self.prompt.unsqueeze(0).expand(input_ids.shape[0], -1, -1)
                if self.prompt_net is not None:
                    mask = attention_mask.unsqueeze(-1).to(embeds.dtype)
                    post = (embeds * mask).sum(1) / mask.sum(1).clamp(min=1)
                    p = p + self.prompt_net(post.to(p.dtype)).unsqueeze(1)
                p = p.to(embeds.dtype)
                embeds = torch.cat([embeds[:, :1], p, embeds[:, 1:]], dim=1)
                ones = attention_mask.new_ones(input_ids.shape[0], p.shape[1])
                kwargs["attention_mask"] = torch.cat(
                    [attention_mask[:, :1], ones, attention_mask[:, 1:]], dim=1
                )
                if token_type_ids is not None:
                    kwargs["token_type_ids"] = torch.cat(
                        [token_type_ids[:, :1], torch.zeros_like(ones), token_type_ids[:, 1:]], dim=1
                    )
            kwargs["inputs_embeds"] = embeds
        if kwargs["token_type_ids"] is None:
            del kwargs["token_type_ids"]
        hidden = self.encoder(**kwargs).last_hidden_state
        if use_prompt:
            hidden = torch.cat([hidden[:, :1], hidden[:, 1 + self.prompt.shape[0] :]], dim=1)
        hidden = self.dropout(hidden)
        if hidden_out is not None:
            hidden_out.append(hidden)
        return self.head(hidden)

    def _tag_loss(self, scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.crf is None:
            return F.cross_entropy(
                scores.float().reshape(-1, scores.shape[-1]), labels.reshape(-1), ignore_index=-100
            )
        packed, tags, mask = pack_labelled(scores, labels)
        return self.crf.neg_log_likelihood(packed, tags, mask)

    def forward(
        self,
        input_ids,
        attention_mask,
        labels,
        token_type_ids=None,
        teacher_tag_ids=None,
        plain_input_ids=None,
        plain_attention_mask=None,
        plain_labels=None,
        plain_token_type_ids=None,
        soft_targets=None,
        aux_labels=None,
        gold_mask=None,
    ):
        """Training loss for a batch. Knowledge-view inputs come first; ``plain_*`` hold the text-only view
        when conditional distillation is on. ``soft_targets`` (a frozen teacher's label scores at the
        labelled positions) and ``aux_labels`` (the teacher's tags) add the teacher-free students' terms.
        ``gold_mask`` ([batch, 1]; 0 for a post without gold labels) keeps such posts out of the gold loss:
        they train through the soft targets alone."""
        hidden: list = []
        scores = self.emissions(
            input_ids, attention_mask, token_type_ids, teacher_tag_ids=teacher_tag_ids, hidden_out=hidden
        )
        if gold_mask is None:
            loss = self._tag_loss(scores, labels)
        else:
            rows = gold_mask[:, 0].bool()
            loss = self._tag_loss(scores[rows], labels[rows]) if rows.any() else scores.sum() * 0.0
        out = {"loss": loss, "task_loss": loss.detach()}
        if soft_targets is not None:
            kd = self._kd(scores[labels != -100], soft_targets)
            out["loss"] = out["loss"] + self.config.kd_weight * kd
            out["kd_loss"] = kd.detach()
        if self.aux_head is not None and aux_labels is not None:
            aux = self.aux_head(hidden[0]).float()
            aux_loss = F.cross_entropy(
                aux.reshape(-1, aux.shape[-1]), aux_labels.reshape(-1), ignore_index=-100
            )
            if torch.isfinite(aux_loss):  # a batch without any teacher answer adds nothing
                out["loss"] = out["loss"] + self.config.aux_weight * aux_loss
            out["aux_loss"] = aux_loss.detach()
        if self.prompt is not None and plain_input_ids is not None:
            plain = self.emissions(plain_input_ids, plain_attention_mask, plain_token_type_ids, prompt=True)
            plain_loss = self._tag_loss(plain, plain_labels)
            kd = self._kd(plain[plain_labels != -100], scores[labels != -100].detach())
            out["loss"] = loss + plain_loss + self.config.kd_weight * kd
            out["kd_loss"] = kd.detach()
        return out

    def _kd(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """T² · KL(teacher_T ‖ student_T), averaged over positions (Hinton et al.)."""
        if student.shape != teacher.shape:
            raise StudentConfigError(
                f"soft targets for {teacher.shape[0]} words, student scores for {student.shape[0]}: the "
                "two views must label the same words"
            )
        t = self.config.kd_temperature
        kl = F.kl_div(
            F.log_softmax(student.float() / t, -1),
            F.log_softmax(teacher.float() / t, -1),
            log_target=True,
            reduction="batchmean",
        )
        return kl * t * t

    @torch.no_grad()
    def predict_label_ids(self, batch: dict, prompt: bool = False) -> list[list[int]]:
        """Label ids of each sequence's labelled positions (one per post word), from one view's inputs."""
        scores = self.emissions(
            batch["input_ids"],
            batch["attention_mask"],
            batch.get("token_type_ids"),
            prompt=prompt,
            teacher_tag_ids=batch.get("teacher_tag_ids"),
        )
        packed, _, pmask = pack_labelled(scores, batch["labels"])
        if self.crf is not None:
            return self.crf.decode(packed, pmask)
        best = packed.argmax(-1)
        return [best[k, : int(pmask[k].sum())].tolist() for k in range(best.shape[0])]


def decode_predictions(
    model: EncoderTagger,
    featurizer: EncoderFeaturizer,
    examples: Sequence[Example],
    knowledge: dict[str, str] | None,
    view: str | None = None,
    batch_size: int = 64,
    source: str = "student:encoder",
    device: str | torch.device | None = None,
    teacher_answers: dict[str, Answer] | None = None,
) -> list[Prediction]:
    """Tag each example and return Prediction records (spans decoded with conlleval semantics).

    ``teacher_answers`` (example id → the teacher's parsed answer) is read by a student trained with
    ``teacher_tags``."""
    view = view or model.config.eval_view
    if view not in VIEWS:
        raise StudentConfigError(f"view {view!r}: expected one of {', '.join(VIEWS)}")
    device = device or next(model.parameters()).device
    model.eval()
    id2label = featurizer.config.bio_labels
    knowledge = knowledge or {}
    answers = teacher_answers or {}
    preds: list[Prediction] = []
    pad = featurizer.tokenizer.pad_token_id or 0
    for start in tqdm(
        range(0, len(examples), batch_size),
        desc="predict",
        unit="batch",
        disable=len(examples) < 4 * batch_size,
    ):
        chunk = examples[start : start + batch_size]
        t0 = time.perf_counter()
        feats = [featurizer.encode(ex, knowledge.get(ex.id), view, answers.get(ex.id)) for ex in chunk]
        batch = {k: v.to(device) for k, v in collate(feats, pad).items()}
        ids = model.predict_label_ids(batch, prompt=view == "plain" and model.prompt is not None)
        seconds = (time.perf_counter() - t0) / len(chunk)
        for ex, row in zip(chunk, ids, strict=True):
            if not featurizer.config.tagger:
                rel = ex.gold.relations[0]  # type: ignore[union-attr]
                label = id2label[row[0]]
                answer = RelationAnswer((Relation(rel.head, rel.tail, label),))
                preds.append(Prediction(ex.id, source, answer, raw=label, usage=Usage(seconds=seconds)))
                continue
            tokens, offsets = task_tokens(ex)
            tags = [id2label[i] for i in row][: len(tokens)]
            tags += ["O"] * (len(tokens) - len(tags))
            if offsets is not None:  # MAE: token spans back to character spans
                values = []
                for s, e, t in tags_to_spans(tags):
                    a, b = offsets[s][0], offsets[e - 1][1]
                    values.append(AttributeValue(t, ex.text[a:b], a, b))
                answer = AttributeAnswer(tuple(values))
            else:
                answer = EntityAnswer(
                    tuple(Entity(s, e, t, " ".join(tokens[s:e])) for s, e, t in tags_to_spans(tags))
                )
            preds.append(Prediction(ex.id, source, answer, raw=" ".join(tags), usage=Usage(seconds=seconds)))
    return preds


def save_config(config: EncoderConfig, out_dir: str | Path) -> None:
    save_student_config("encoder", config, out_dir)


def load_encoder_student(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[EncoderTagger, EncoderFeaturizer]:
    """Load a student saved by ``train_encoder`` (its ``best/`` folder): config, tokenizer and weights.

    The base encoder is rebuilt from ``config.model`` (an id or a local path), then every weight (encoder or
    LoRA adapter, head, CRF, prompt vectors) is restored from the saved state dict.
    """
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    path = Path(path)
    _, meta = read_student_config(path, "encoder")
    config = EncoderConfig(**meta)
    model = EncoderTagger(config)
    state = load_file(str(path / "model.safetensors"))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if "lora_" in k or not k.startswith("encoder.")]:
        raise StudentConfigError(
            f"{path}: saved weights do not fit the model (missing {missing[:5]}, unexpected {unexpected[:5]})"
        )
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    return model.to(device).eval(), EncoderFeaturizer(config, tokenizer)


__all__ = [
    "CRF",
    "MARKERS",
    "VIEWS",
    "EncoderConfig",
    "EncoderDataset",
    "EncoderFeaturizer",
    "EncoderTagger",
    "StudentConfigError",
    "bio_tags",
    "collate",
    "decode_predictions",
    "load_encoder_student",
    "pack_labelled",
    "task_tokens",
]
