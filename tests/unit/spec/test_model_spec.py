"""`spec.model`: projector kinds, projector weights, LoRA; bad combinations name the field and the fix."""

from __future__ import annotations

import textwrap

import pytest
from spec_issues import raised_issue

from vlmtune.spec import LoraSpec, Projector, load_jobs

JOB = """\
apiVersion: vlmtune.dev/v1alpha1
kind: TuningJob
metadata:
  name: stage1
spec:
  model: {MODEL}
  data:
    sources: [{demo: {perTask: 4}}]
  training: {globalBatchSize: 8, microBatchSize: 2}
  resources: {workers: 2}
  output: {uri: ./runs/stage1}
"""
PARTS = "languageModel: lmsys/vicuna-13b-v1.5, visionTower: openai/clip-vit-large-patch14-336"


def load_model(tmp_path, model: str):
    path = tmp_path / "job.yaml"
    path.write_text(textwrap.dedent(JOB).replace("{MODEL}", "{" + model + "}"))
    (job,) = load_jobs([path])
    return job.spec.model


def issue_at(tmp_path, model: str, field: str):
    return raised_issue(field, load_model, tmp_path, model)


def test_projector_kinds(tmp_path):
    assert load_model(tmp_path, PARTS).projector is Projector.mlp2x_gelu
    assert load_model(tmp_path, f"{PARTS}, projector: linear").projector is Projector.linear
    issue = issue_at(tmp_path, f"{PARTS}, projector: mlp3x_gelu", "spec.model.projector")
    assert "'linear'" in issue.fix and "'mlp2x_gelu'" in issue.fix


def test_projector_weights_start_a_new_projector(tmp_path):
    model = load_model(tmp_path, f"{PARTS}, projectorWeights: s3://models/llava-v1.5-13b-pretrain/mm_projector.bin")
    assert model.projector_weights.endswith("mm_projector.bin")
    assert load_model(tmp_path, "preset: tiny, projectorWeights: ./p.bin").projector_weights == "./p.bin"
    issue = issue_at(tmp_path, "from: {job: stage0}, projectorWeights: ./p.bin", "spec.model.projectorWeights")
    assert "already has a trained one" in issue.message and "remove projectorWeights" in issue.fix


def test_lora_defaults_follow_llava_1_5(tmp_path):
    lora = load_model(tmp_path, f"{PARTS}, lora: {{}}").lora
    assert lora == LoraSpec()
    assert (lora.rank, lora.alpha, lora.dropout) == (128, 256, 0.05)
    assert lora.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    custom = load_model(tmp_path, f"{PARTS}, lora: {{rank: 8, alpha: 16, targetModules: [q_proj, v_proj]}}").lora
    assert (custom.rank, custom.alpha, custom.target_modules) == (8, 16, ["q_proj", "v_proj"])


def test_lora_needs_the_language_model_to_train(tmp_path):
    issue = issue_at(tmp_path, f"{PARTS}, lora: {{}}, trainable: [projector]", "spec.model.lora")
    assert "language_model is not in trainable" in issue.message
    assert "add language_model to trainable" in issue.fix


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("rank", "0", "greater than or equal to 1"),
        ("dropout", "1.0", "less than 1"),
        ("targetModules", "[]", "at least 1"),
        ("targetModules", "['.*proj']", "not module names"),
        ("targetModules", "[q_proj, q_proj]", "twice"),
    ],
)
def test_bad_lora_settings_name_the_field(tmp_path, field, value, words):
    issue = issue_at(tmp_path, f"{PARTS}, lora: {{{field}: {value}}}", f"spec.model.lora.{field}")
    assert words in issue.message
