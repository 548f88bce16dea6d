"""Which model an EvalJob evaluates: the upstream job's export, a URI, or the tiny preset."""

from __future__ import annotations

import pytest

from vlmtune.eval.runner import model_to_evaluate
from vlmtune.spec import EvalModelSpec


def test_model_to_evaluate():
    chained = EvalModelSpec.model_validate({"from": {"job": "s1"}})
    assert model_to_evaluate(chained, "/runs/s1/model") == "/runs/s1/model"
    assert model_to_evaluate(EvalModelSpec(pretrained="s3://m/llava"), None) == "s3://m/llava"
    assert model_to_evaluate(EvalModelSpec(preset="tiny"), None) is None
    with pytest.raises(ValueError, match="spec.model.from.job: 's1' has no exported model yet"):
        model_to_evaluate(chained, None)
