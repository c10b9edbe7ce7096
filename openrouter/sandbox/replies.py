"""Deterministic assistant replies that read like a real model's.

The same (model, last user message, temperature) always gives the same text, so a streamed and a
non-streamed request can be compared, and a test can predict what it will see. A "token" is a
word with the whitespace that follows it: joining the tokens gives back the text exactly.
"""

from __future__ import annotations

import hashlib
import random
import re
from typing import Any

LONG_REPLY_TOKENS = 600

_TOKEN = re.compile(r"\s+|\S+\s*")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9+#'.-]*")
_WANTS_CODE = re.compile(r"\b(code|coding|python|functions?|script)\b", re.IGNORECASE)
_WANTS_LONG = re.compile(r"\blong\b", re.IGNORECASE)
_GREETING = re.compile(r"^\s*(hello|hi|hey|good (morning|afternoon|evening))\b[\s!.,]*$", re.I)
# Question openers stripped from the prompt to leave its topic ("How do I sort a list?").
_OPENER = re.compile(
    r"^(please|so|ok(ay)?|hey|hi|hello|how (do|can|should|would) (i|we|you)|how to|"
    r"what('s| is| are| does)|why (is|are|do|does)|when (is|should)|can you|could you|would you|"
    r"tell me (about|how)|explain|describe|write( me)?|give me|show me|help me( to)?|"
    r"i (want|need) to|i'd like to)[\s,]+",
    re.IGNORECASE,
)
_STOPWORD_TEXT = (
    "a an the and or but of to in on for with about into from by at as is are was were be been "
    "do does did i me my we our you your it its this that these those how what why when where "
    "which who can could would should will please some any more most very just also than then "
    "there their them they he she his her not no yes if so up out"
)
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())

_OPENINGS = (
    "Here's a concise overview of {topic}.",
    "Good question — {topic} comes up a lot, so let's break it down.",
    "Let's look at {topic} step by step.",
    "Short answer: it depends on the context, but here is how I would approach {topic}.",
)
_POINTS = (
    "**{Kw}**: start from the core idea and make sure it is clear before optimising anything.",
    "**Trade-offs**: every approach to {topic} balances simplicity, speed and maintainability.",
    "**Common pitfalls**: skipping edge cases and assuming the happy path is the only path.",
    '**A good habit**: write down what "done" looks like before you begin.',
    "**{Kw2} in practice**: small, concrete examples teach more than long explanations.",
    "**Measure first**: check where the real cost is before changing {topic}.",
    "**Keep it simple**: the plainest solution that works is usually the easiest to change later.",
)
_CLOSINGS = (
    "In practice, the best results come from trying a small example, checking what happens, and "
    "adjusting. If you share more about your situation, I can tailor this to it.",
    "None of this is set in stone: treat it as a starting point and adapt it to your constraints. "
    "Happy to go deeper on any of these points.",
    "If you keep these ideas in mind, {topic} becomes much less intimidating. Let me know which "
    "part you would like to explore next.",
)
_FILLER = (
    "A useful way to think about {topic} is to separate what must happen from what would be nice.",
    "Most problems with {kw} come from unclear assumptions rather than from hard technical limits.",
    "Start with the simplest version that could possibly work, then improve it step by step.",
    "It helps to write a few examples by hand before automating anything.",
    "When in doubt, prefer the option that is easier to undo.",
    "Experienced practitioners tend to revisit their first design once real usage data arrives.",
    "Documentation matters: a short note on why a choice was made saves hours later.",
    "Small, frequent checks catch mistakes while they are still cheap to fix.",
    "Performance is rarely the first concern; correctness and clarity usually come first.",
    "Talking the approach through with someone else often reveals a simpler path.",
    "Keep an eye on edge cases such as empty input, very large input and unexpected formats.",
    "Consistency across a project is often worth more than any single clever trick.",
)
_SECTIONS = ("Background", "How it works", "A worked example", "Things to watch", "Going further")


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text)


def message_text(content: Any) -> str:
    """A message's text, whether ``content`` is a string or a list of OpenAI content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text", "") for p in content if isinstance(p, dict)]
        return " ".join(p for p in parts if isinstance(p, str))
    return ""


def prompt_tokens(messages: list[dict[str, Any]]) -> int:
    """Roughly what a tokenizer would count: the words plus a few tokens of framing per message."""
    return sum(len(tokenize(message_text(m.get("content")))) + 4 for m in messages) + 2


def reply_text(*, model: str, prompt: str, temperature: float | None = None) -> str:
    seed = f"{model}\n{'' if temperature is None else f'{temperature:.1f}'}\n{prompt}"
    rng = random.Random(hashlib.sha256(seed.encode()).digest())
    if _GREETING.match(prompt):
        return _greeting(rng)
    topic = _topic(prompt)
    keywords = [w for w in _WORD.findall(topic) if w.lower() not in _STOPWORDS] or ["the basics"]
    kw, kw2 = keywords[0], keywords[-1]
    fill = {
        "topic": topic,
        "kw": kw,
        "Kw": kw[:1].upper() + kw[1:],
        "Kw2": kw2[:1].upper() + kw2[1:],
    }

    parts = [
        f"## {topic[:1].upper() + topic[1:]}",
        rng.choice(_OPENINGS).format(**fill),
        "\n".join(f"- {p.format(**fill)}" for p in rng.sample(_POINTS, 3)),
    ]
    if _WANTS_CODE.search(prompt):
        parts.append(_code_block(keywords, topic))
    if _WANTS_LONG.search(prompt):
        parts.extend(_long_sections(rng, fill, sum(len(tokenize(p)) for p in parts)))
    parts.append(rng.choice(_CLOSINGS).format(**fill))
    return "\n\n".join(parts)


def _topic(prompt: str) -> str:
    text = " ".join(prompt.split())
    text = re.split(r"(?<=[.?!])\s", text, maxsplit=1)[0]
    previous = None
    while previous != text:
        previous, text = text, _OPENER.sub("", text)
    words = text.rstrip(" ?.!:;,").split()
    if not words:
        return "your question"
    topic = " ".join(words[:10])
    return topic[:80]


def _greeting(rng: random.Random) -> str:
    hello = rng.choice(("Hello there!", "Hi!", "Hey, nice to meet you!"))
    return (
        f"**{hello}** I'm happy to help. Here are a few things I can do:\n\n"
        "- Answer questions and explain ideas\n"
        "- Draft, shorten or polish text\n"
        "- Read and write code\n\n"
        "What would you like to talk about?"
    )


def _code_block(keywords: list[str], topic: str) -> str:
    words = [re.sub(r"\W", "", w.lower()) for w in keywords[:2]]
    name = "_".join(w for w in words if w) or "solve"
    if not name[0].isalpha():
        name = f"do_{name}"
    doc = topic.replace('"', "'").replace("\\", "/")
    return (
        "Here is a small example in Python:\n\n"
        "```python\n"
        f"def {name}(items: list[str]) -> list[str]:\n"
        f'    """A starting point for: {doc}."""\n'
        "    seen: set[str] = set()\n"
        "    result = []\n"
        "    for item in items:\n"
        "        if item not in seen:\n"
        "            seen.add(item)\n"
        "            result.append(item)\n"
        "    return sorted(result)\n"
        "\n"
        "\n"
        f'print({name}(["b", "a", "b"]))  # [\'a\', \'b\']\n'
        "```"
    )


def _long_sections(rng: random.Random, fill: dict[str, str], tokens_so_far: int) -> list[str]:
    sections: list[str] = []
    count = tokens_so_far + 40  # leave room for the closing paragraph
    index = 0
    while count < LONG_REPLY_TOKENS:
        sentences = [s.format(**fill) for s in rng.sample(_FILLER, 5)]
        section = f"### {_SECTIONS[index % len(_SECTIONS)]}\n\n" + " ".join(sentences)
        sections.append(section)
        count += len(tokenize(section))
        index += 1
    return sections
