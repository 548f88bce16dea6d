"""Generation: the training template exactly, left padding that changes nothing, answers decoded alone."""

from __future__ import annotations

import io

import pytest
import torch
from PIL import Image

from vlmtune.eval import generation
from vlmtune.eval.generation import Question, left_pad, prompt_ids
from vlmtune_model import build_tiny, normalize_turns, tokenize_conversation


def _png(color) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), color).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def built():
    return generation.load_model(None)


QUESTIONS = [
    Question("What colour is the image? Answer with one word.", _png((220, 40, 40))),
    Question("Is the image blue? Please answer yes or no.", _png((40, 80, 220))),
    Question("Name it.", _png((40, 170, 60))),
]


def test_prompt_is_the_training_prompt_up_to_the_answer(built):
    # A Vision-Flan record with <image> after the instruction: training moves it to the front.
    record = [{"from": "human", "value": "Name the shape.\n<image>"}, {"from": "gpt", "value": "circle"}]
    turns = normalize_turns(record)
    trained = tokenize_conversation(turns, built.tokenizer, image_tokens=built.image_tokens, max_length=4096)
    ids = prompt_ids(built, "Name the shape.")
    assert trained.input_ids[: len(ids)] == ids
    assert trained.labels[len(ids) - 1] == -100 and trained.labels[len(ids)] != -100  # the answer starts next
    assert ids[0] == built.tokenizer.bos_token_id and ids.count(built.model.config.image_token_id) == 64


def test_left_padding():
    input_ids, mask = left_pad([[5, 6, 7], [8]], pad_id=0)
    assert input_ids.tolist() == [[5, 6, 7], [0, 0, 8]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]


def test_a_padded_batch_scores_like_each_question_alone(built):
    def step_logits(questions):
        ids, mask = left_pad([prompt_ids(built, q.prompt) for q in questions], built.tokenizer.pad_token_id)
        out = built.model.generate(
            input_ids=ids,
            attention_mask=mask,
            pixel_values=generation.image_batch(built, [q.image for q in questions]),
            max_new_tokens=3,
            do_sample=False,
            output_logits=True,
            return_dict_in_generate=True,
            pad_token_id=0,
            eos_token_id=-1,
        )
        return torch.stack(out.logits, 1)

    batch = step_logits(QUESTIONS)
    for row, question in enumerate(QUESTIONS):
        torch.testing.assert_close(batch[row], step_logits([question])[0], atol=1e-4, rtol=0)


def test_generate_returns_only_the_answer_and_learns_what_training_taught():
    """Overfit a tiny model on two answers with the training tokenization; generation must give them back."""
    built = build_tiny(seed=1)
    records = [
        ("What colour is the image? Answer with one word.", _png((220, 40, 40)), "crimson"),
        ("Is the image blue? Please answer yes or no.", _png((40, 80, 220)), "yes"),
    ]
    batch = [
        tokenize_conversation(
            normalize_turns([{"from": "human", "value": f"<image>\n{q}"}, {"from": "gpt", "value": a}]),
            built.tokenizer,
            image_tokens=built.image_tokens,
            max_length=4096,
        )
        for q, _, a in records
    ]
    width = max(len(t.input_ids) for t in batch)
    ids = torch.tensor([t.input_ids + [0] * (width - len(t.input_ids)) for t in batch])
    labels = torch.tensor([t.labels + [-100] * (width - len(t.labels)) for t in batch])
    mask = (torch.arange(width)[None] < torch.tensor([len(t.input_ids) for t in batch])[:, None]).long()
    pixels = generation.image_batch(built, [image for _, image, _ in records])
    optimizer = torch.optim.AdamW(built.model.parameters(), lr=3e-3)
    torch.manual_seed(0)
    for _ in range(40):
        loss = built.model(input_ids=ids, attention_mask=mask, pixel_values=pixels, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    built.model.eval()
    answers = generation.generate(built, [Question(q, image) for q, image, _ in records], max_new_tokens=6)
    assert answers == ["crimson", "yes"]


def test_text_only_questions_serve_a_judge_with_its_own_system_prompt_and_seeded_sampling(built):
    """The judge's path: no image tokens, the request's system prompt, greedy at 0 and seeded above it."""
    text = Question("Score both answers from 1 to 10.", None, system="You are a precise judge.")
    ids = prompt_ids(built, text.prompt, with_image=False, system=text.system)
    assert built.model.config.image_token_id not in ids
    assert built.tokenizer.decode(ids[1:]).startswith("you are a precise judge. user : score both")  # uncased
    greedy = generation.generate(built, [text, text], max_new_tokens=4)
    assert greedy[0] == greedy[1] and greedy == generation.generate(built, [text], 4) * 2
    hot = Question(text.prompt, None, text.system, max_new_tokens=6, temperature=1.5)
    assert generation.generate(built, [hot], 4, seed=3) == generation.generate(built, [hot], 4, seed=3)
    with pytest.raises(ValueError, match="one kind at a time"):
        generation.generate(built, [text, QUESTIONS[0]], 4)
