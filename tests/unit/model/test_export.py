"""The export answers the standard way: plain transformers (AutoProcessor, apply_chat_template, generate) builds the
same prompt and pixels as training and gives the same answer as vlmtune's evaluation."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoProcessor, AutoTokenizer, LlavaForConditionalGeneration

from vlmtune.eval.generation import Question, generate, prompt_ids
from vlmtune_model import IGNORE_INDEX, build_tiny, load_export, normalize_turns, pixel_values, prompt_text, save_export
from vlmtune_model.template import tokenize_conversation

QUESTION = "What shape is shown? Answer with one word."


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def picture(width: int, height: int, seed: int) -> Image.Image:
    """Smooth content with edges, like a drawing or a photo."""
    coarse = np.random.default_rng(seed).integers(0, 256, (height // 4 + 1, width // 4 + 1, 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize((width, height), Image.Resampling.BILINEAR)


def taught(answers: dict[bytes, str], steps: int = 40):
    """The tiny model after a few steps on `answers` (image -> answer): it then answers them, not noise."""
    built = build_tiny(seed=0)
    built.model.get_input_embeddings().requires_grad_(False)  # 30k x 128 of Adam state for nothing
    batch = []
    for image, answer in answers.items():
        turns = normalize_turns([{"from": "human", "value": f"<image>\n{QUESTION}"}, {"from": "gpt", "value": answer}])
        tokens = tokenize_conversation(turns, built.tokenizer, image_tokens=built.image_tokens, max_length=256)
        batch.append((tokens, pixel_values(Image.open(io.BytesIO(image)), built.image_spec)))
    ids = torch.tensor([tokens.input_ids for tokens, _ in batch])
    labels = torch.tensor([tokens.labels for tokens, _ in batch])
    pixels = torch.from_numpy(np.stack([values for _, values in batch]))
    # Logits only where an answer token is predicted: the 30k-word head everywhere would cost 50x more.
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = labels[:, 1:] != IGNORE_INDEX
    optimizer = torch.optim.AdamW([p for p in built.model.parameters() if p.requires_grad], lr=3e-3)
    for _ in range(steps):
        logits = built.model(input_ids=ids, pixel_values=pixels, logits_to_keep=keep).logits
        torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels[:, 1:][keep[:, :-1]]).backward()
        optimizer.step()
        optimizer.zero_grad()
    built.model.eval()
    return built


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """An export of a model that answers "circle" about one wide image and "triangle" about one tall image."""
    wide, tall = png(picture(64, 48, seed=1)), png(picture(40, 64, seed=2))
    built = taught({wide: "circle", tall: "triangle"})
    folder = tmp_path_factory.mktemp("export")
    save_export(built, built.model.state_dict(), folder)
    return folder, {wide: "circle", tall: "triangle"}


def standard_answers(folder, images: list[bytes], question: str) -> list[str]:
    """How a transformers user asks an exported model, batched: nothing from vlmtune."""
    processor = AutoProcessor.from_pretrained(folder)
    model = LlavaForConditionalGeneration.from_pretrained(folder).eval()
    messages = [{"role": "user", "content": [{"type": "text", "text": question}, {"type": "image"}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(
        images=[Image.open(io.BytesIO(data)) for data in images],
        text=[prompt] * len(images),
        padding=True,
        return_tensors="pt",
    )
    with torch.inference_mode():
        output = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    return [
        text.strip()
        for text in processor.batch_decode(output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    ]


def test_standard_generation_gives_the_evaluation_answer(exported):
    folder, answers = exported
    images = list(answers)
    ours = generate(load_export(str(folder)), [Question(QUESTION, image) for image in images], max_new_tokens=8)
    assert ours == list(answers.values())  # the model learned something to say, so the comparison is not of noise
    assert standard_answers(folder, images, QUESTION) == ours


def test_chat_template_tokens_are_the_evaluation_prompt(exported):
    folder, answers = exported
    processor = AutoProcessor.from_pretrained(folder)
    image = Image.open(io.BytesIO(next(iter(answers))))
    messages = [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": QUESTION}]}]
    inputs = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)
    built = load_export(str(folder))
    ids = list(inputs["input_ids"][0])
    assert ids == prompt_ids(built, QUESTION)
    assert ids[0] == built.tokenizer.bos_token_id and built.tokenizer.eos_token_id not in ids


@pytest.mark.parametrize(
    "messages, turns",
    [
        ([{"role": "user", "content": "<image>\nWhat shape?"}], [{"from": "human", "value": "<image>\nWhat shape?"}]),
        (
            [{"role": "user", "content": [{"type": "text", "text": "What shape?"}, {"type": "image"}]}],
            [{"from": "human", "value": "What shape?\n<image>"}],
        ),
        (
            [
                {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Shape?"}]},
                {"role": "assistant", "content": "circle"},
                {"role": "user", "content": "Colour?"},
            ],
            [
                {"from": "human", "value": "<image>\nShape?"},
                {"from": "gpt", "value": "circle"},
                {"from": "human", "value": "Colour?"},
            ],
        ),
        ([{"role": "user", "content": "No image here."}], [{"from": "human", "value": "No image here."}]),
    ],
)
def test_chat_template_renders_the_training_prompt(exported, messages, turns):
    folder, _ = exported
    tokenizer = AutoTokenizer.from_pretrained(folder)
    rendered = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert rendered == prompt_text(normalize_turns(turns, require_answer=False), eos=tokenizer.eos_token)


def test_chat_template_takes_a_system_message_and_closes_answers_with_eos(exported):
    folder, _ = exported
    tokenizer = AutoTokenizer.from_pretrained(folder)
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "hello"},
    ]
    assert tokenizer.apply_chat_template(messages, tokenize=False) == "Be brief. USER: Hi ASSISTANT: hello[SEP]"


def test_prompts_get_bos_and_no_eos_and_batches_pad_on_the_left(exported):
    folder, _ = exported
    tokenizer = AutoTokenizer.from_pretrained(folder)
    ids = tokenizer("USER: hi ASSISTANT:").input_ids
    assert ids[0] == tokenizer.bos_token_id and tokenizer.eos_token_id not in ids
    batch = tokenizer(["hi", "a longer prompt"], padding=True).input_ids
    assert batch[0][0] == tokenizer.pad_token_id and batch[0][-1] != tokenizer.pad_token_id


@pytest.mark.parametrize("width, height", [(64, 48), (48, 64), (100, 30), (30, 100), (300, 200), (37, 91), (64, 64)])
def test_processor_pixels_equal_training_pixels(exported, width, height):
    folder, _ = exported
    processor = AutoProcessor.from_pretrained(folder)
    image = picture(width, height, seed=width * height)
    standard = processor.image_processor(images=image, return_tensors="np")["pixel_values"][0]
    training = pixel_values(Image.open(io.BytesIO(png(image))), load_export(str(folder)).image_spec)
    assert standard.shape == training.shape == (3, 64, 64)
    assert np.array_equal(standard, training)


def test_a_tokenizer_that_appends_eos_is_made_bos_only(tmp_path):
    """Exports written before the chat template carry BERT's tokenizer, which appends [SEP]; loading fixes that."""
    from vlmtune_model.tokenizer import llava_tokenizer, offline_tokenizer_dir

    bert = AutoTokenizer.from_pretrained(str(offline_tokenizer_dir()))
    bert.bos_token, bert.eos_token = bert.cls_token, bert.sep_token
    assert bert("hi").input_ids[-1] == bert.eos_token_id
    bert.save_pretrained(tmp_path)
    fixed = llava_tokenizer(AutoTokenizer.from_pretrained(tmp_path))
    assert fixed("hi").input_ids == [bert.bos_token_id, *bert("hi", add_special_tokens=False).input_ids]
    assert fixed("hi <image>", add_special_tokens=False).input_ids[-1] == fixed.convert_tokens_to_ids("<image>")
