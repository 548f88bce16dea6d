"""The baseline: LLaVA-1.5's LazySupervisedDataset + DataCollator, as in haotian-liu/LLaVA.

A faithful copy of the per-sample work in `llava/train/train.py` (`LazySupervisedDataset.
__getitem__`, `expand2square`, `preprocess_multimodal`, `preprocess_v1`,
`DataCollatorForSupervisedDataset`), `llava/mm_utils.py::tokenizer_image_token` and the
vicuna_v1 `Conversation.get_prompt`, with two substitutions that keep the comparison fair:
images come from bytes in memory (as vlmtune's do) instead of a local folder, and the
tokenizer is whatever the caller passes (the benchmark gives both paths the same one).
With a tokenizer other than Llama's the label masks come out wrong (preprocess_v1's offsets
assume SentencePiece); only the cost is measured, so such samples are counted, not printed.
"""

from __future__ import annotations

import copy
import io
import json

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

IGNORE_INDEX = -100
IMAGE_TOKEN_INDEX = -200
DEFAULT_IMAGE_TOKEN = "<image>"
SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
ROLES = ("USER", "ASSISTANT")
SEP, SEP2 = " ", "</s>"


def clip_image_processor(size: int = 336):
    """transformers' CLIP processor with openai/clip-vit-large-patch14-336's preprocessor_config."""
    from transformers import CLIPImageProcessorPil
    from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, PILImageResampling

    return CLIPImageProcessorPil(
        size={"shortest_edge": size},
        crop_size={"height": size, "width": size},
        resample=PILImageResampling.BICUBIC,
        do_resize=True,
        do_center_crop=True,
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=OPENAI_CLIP_MEAN,
        image_std=OPENAI_CLIP_STD,
        do_convert_rgb=True,
    )


def expand2square(pil_img, background_color):
    width, height = pil_img.size
    if width == height:
        return pil_img
    if width > height:
        result = Image.new(pil_img.mode, (width, width), background_color)
        result.paste(pil_img, (0, (width - height) // 2))
        return result
    result = Image.new(pil_img.mode, (height, height), background_color)
    result.paste(pil_img, ((height - width) // 2, 0))
    return result


def tokenizer_image_token(prompt, tokenizer, image_token_index=IMAGE_TOKEN_INDEX, return_tensors=None):
    prompt_chunks = [tokenizer(chunk).input_ids for chunk in prompt.split("<image>")]

    def insert_separator(X, sep):
        return [ele for sublist in zip(X, [sep] * len(X)) for ele in sublist][:-1]

    input_ids = []
    offset = 0
    if len(prompt_chunks) > 0 and len(prompt_chunks[0]) > 0 and prompt_chunks[0][0] == tokenizer.bos_token_id:
        offset = 1
        input_ids.append(prompt_chunks[0][0])
    for x in insert_separator(prompt_chunks, [image_token_index] * (offset + 1)):
        input_ids.extend(x[offset:])
    if return_tensors == "pt":
        return torch.tensor(input_ids, dtype=torch.long)
    return input_ids


def get_prompt(messages: list[tuple[str, str]]) -> str:
    """vicuna_v1's `Conversation.get_prompt` (SeparatorStyle.TWO)."""
    seps = [SEP, SEP2]
    ret = SYSTEM + seps[0]
    for i, (role, message) in enumerate(messages):
        if message:
            ret += role + ": " + message + seps[i % 2]
        else:
            ret += role + ":"
    return ret


def preprocess_multimodal(sources):
    for source in sources:
        for sentence in source:
            if DEFAULT_IMAGE_TOKEN in sentence["value"]:
                sentence["value"] = sentence["value"].replace(DEFAULT_IMAGE_TOKEN, "").strip()
                sentence["value"] = DEFAULT_IMAGE_TOKEN + "\n" + sentence["value"]
                sentence["value"] = sentence["value"].strip()
    return sources


def preprocess_v1(sources, tokenizer, has_image=False, stats=None):
    roles = {"human": ROLES[0], "gpt": ROLES[1]}
    conversations = []
    for i, source in enumerate(sources):
        if roles[source[0]["from"]] != ROLES[0]:
            source = source[1:]
        messages = []
        for j, sentence in enumerate(source):
            role = roles[sentence["from"]]
            assert role == ROLES[j % 2], f"{i}"
            messages.append((role, sentence["value"]))
        conversations.append(get_prompt(messages))
    if has_image:
        input_ids = torch.stack(
            [tokenizer_image_token(prompt, tokenizer, return_tensors="pt") for prompt in conversations], dim=0
        )
    else:
        input_ids = tokenizer(
            conversations,
            return_tensors="pt",
            padding="longest",
            max_length=tokenizer.model_max_length,
            truncation=True,
        ).input_ids
    targets = input_ids.clone()
    sep = SEP + ROLES[1] + ": "
    for conversation, target in zip(conversations, targets):
        total_len = int(target.ne(tokenizer.pad_token_id).sum())
        rounds = conversation.split(SEP2)
        cur_len = 1
        target[:cur_len] = IGNORE_INDEX
        for i, rou in enumerate(rounds):
            if rou == "":
                break
            parts = rou.split(sep)
            if len(parts) != 2:
                break
            parts[0] += sep
            if has_image:
                round_len = len(tokenizer_image_token(rou, tokenizer))
                instruction_len = len(tokenizer_image_token(parts[0], tokenizer)) - 2
            else:
                round_len = len(tokenizer(rou).input_ids)
                instruction_len = len(tokenizer(parts[0]).input_ids) - 2
            if i != 0 and not getattr(tokenizer, "legacy", True):  # LLaVA: and tokenizers >= 0.14
                round_len -= 1
                instruction_len -= 1
            target[cur_len : cur_len + instruction_len] = IGNORE_INDEX
            cur_len += round_len
        target[cur_len:] = IGNORE_INDEX
        if cur_len < tokenizer.model_max_length and cur_len != total_len:
            target[:] = IGNORE_INDEX
            if stats is not None:
                stats["tokenization_mismatch"] = stats.get("tokenization_mismatch", 0) + 1
    return dict(input_ids=input_ids, labels=targets)


class LazySupervisedDataset(Dataset):
    """Records in vlmtune's format (`image_bytes` inline) read the way LLaVA reads its JSON list."""

    def __init__(self, records: list[dict], tokenizer, image_processor):
        # LLaVA's JSON has an `image` key only on records with an image; text-only records lack it.
        self.list_data_dict = [
            {
                "id": r["key"],
                "conversations": json.loads(r["conversations"]),
                **({"image": r["image"], "image_bytes": r["image_bytes"]} if r.get("image") else {}),
            }
            for r in records
        ]
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.stats: dict[str, int] = {}

    def __len__(self):
        return len(self.list_data_dict)

    def __getitem__(self, i):
        sources = self.list_data_dict[i]
        if isinstance(i, int):
            sources = [sources]
        if "image" in sources[0]:
            processor = self.image_processor
            image = Image.open(io.BytesIO(self.list_data_dict[i]["image_bytes"])).convert("RGB")
            image = expand2square(image, tuple(int(x * 255) for x in processor.image_mean))
            image = processor.preprocess(image, return_tensors="pt")["pixel_values"][0]
            sources = preprocess_multimodal(copy.deepcopy([e["conversations"] for e in sources]))
        else:
            sources = copy.deepcopy([e["conversations"] for e in sources])
        data_dict = preprocess_v1(
            sources, self.tokenizer, has_image=("image" in self.list_data_dict[i]), stats=self.stats
        )
        if isinstance(i, int):
            data_dict = dict(input_ids=data_dict["input_ids"][0], labels=data_dict["labels"][0])
        if "image" in self.list_data_dict[i]:
            data_dict["image"] = image
        else:  # data_args.is_multimodal: text-only samples get a blank image
            crop_size = self.image_processor.crop_size
            data_dict["image"] = torch.zeros(3, crop_size["height"], crop_size["width"])
        return data_dict


class DataCollatorForSupervisedDataset:
    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, instances):
        input_ids, labels = tuple([instance[key] for instance in instances] for key in ("input_ids", "labels"))
        input_ids = torch.nn.utils.rnn.pad_sequence(
            input_ids, batch_first=True, padding_value=self.tokenizer.pad_token_id
        )
        labels = torch.nn.utils.rnn.pad_sequence(labels, batch_first=True, padding_value=IGNORE_INDEX)
        input_ids = input_ids[:, : self.tokenizer.model_max_length]
        labels = labels[:, : self.tokenizer.model_max_length]
        batch = dict(input_ids=input_ids, labels=labels, attention_mask=input_ids.ne(self.tokenizer.pad_token_id))
        if "image" in instances[0]:
            images = [instance["image"] for instance in instances]
            if all(x is not None and x.shape == images[0].shape for x in images):
                batch["images"] = torch.stack(images)
            else:
                batch["images"] = images
        return batch


def llava_loader(records: list[dict], tokenizer, image_size: int = 336, batch_size: int = 16) -> DataLoader:
    """LLaVA's training data path over `records`, in this process (num_workers=0)."""
    dataset = LazySupervisedDataset(records, tokenizer, clip_image_processor(image_size))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=0,
        collate_fn=DataCollatorForSupervisedDataset(tokenizer),
    )
