#!/usr/bin/env python3
"""Write tests/data/golden/tokenizer.json: OpenAI CLIP BPE tokenizations of a corpus of tricky strings,
the reference the Rust tokenizer is tested against (exact token id equality).

  tools/.venv/bin/python tools/testdata/make_tokenizer_golden.py \
      [--out tests/data/golden/tokenizer.json]

The reference is open_clip's SimpleTokenizer() (OpenAI's BPE, vocabulary 49408, clean='lower'):
  clean   = " ".join(html.unescape(html.unescape(ftfy.fix_text(text))).strip().split()).lower()
  ids     = bpe of every match of  <start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]
            |[^\\s\\p{L}\\p{N}]+  (regex module, IGNORECASE) in clean; no start/end tokens, untruncated
  context = [49406] + ids + [49407], cut to 77 with 49407 last, padded with 0 to 77 (open_clip.tokenize)
Every entry also has its corpus category and 'ftfy_changed': the ftfy fixes whose removal (one at a
time, through ftfy.TextFixerConfig) changes ftfy.fix_text's output; "a+b" names a pair of fixes that
only change the output when both are off (they do the same thing, e.g. C1 controls).

The corpus is hand-written cases plus generated ones from random.Random(SEED), so re-running writes a
byte-identical file. Lone surrogates are left out: they cannot be written as UTF-8 JSON. Strings that
ftfy's mojibake repair (fix_encoding and its sub-fixes) changes appear only in category 'mojibake'.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import html
import itertools
import json
import platform
import random
import re
import sys
import unicodedata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))
import bundlelib as bl  # noqa: E402

SEED = 20240611  # any fixed value; changing it changes every generated string
N_RANDOM = 150   # category 'random' (13)
MAX_MOJIBAKE = 10  # the Rust side does not replicate ftfy's mojibake repair; just show a few cases

# ftfy.TextFixerConfig fields that are fixes (the rest are limits/flags), and the value that turns each off.
FTFY_FIXES: dict[str, object] = {
    "unescape_html": False, "remove_terminal_escapes": False, "fix_encoding": False,
    "restore_byte_a0": False, "replace_lossy_sequences": False, "decode_inconsistent_utf8": False,
    "fix_c1_controls": False, "fix_latin_ligatures": False, "fix_character_width": False,
    "uncurl_quotes": False, "fix_line_breaks": False, "fix_surrogates": False,
    "remove_control_chars": False, "normalization": None,
}
# The mojibake repair: only category 'mojibake' may contain strings these change.
MOJIBAKE_FIXES = {"fix_encoding", "restore_byte_a0", "replace_lossy_sequences", "decode_inconsistent_utf8"}
# ...except this pair: both decode lone C1 controls (U+0080-U+009F) as windows-1252, a plain character
# table the Rust side does replicate, so C1 controls stay in categories 'control' and 'whitespace'.
C1_PAIR = "fix_encoding+fix_c1_controls"

CATEGORIES = ["plain", "apostrophes", "accents", "cjk", "emoji", "punctuation", "numbers", "html",
              "whitespace", "control", "special_tokens", "long", "random", "mojibake"]


def log(msg: str) -> None:
    print(f"[make_tokenizer_golden] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# corpus pieces
# --------------------------------------------------------------------------------------------

NOUNS = ["cat", "dog", "person", "car", "delivery van", "bicycle", "garage door", "package", "raccoon",
         "fox", "deer", "mail carrier", "truck", "motorcycle", "bird", "squirrel", "child", "ladder",
         "trash can", "umbrella", "skateboard", "stroller", "bear", "coyote", "horse", "pickup truck",
         "school bus", "lawn mower", "snowplow", "garden hose"]
TEMPLATES = ["a photo of a {}", "a blurry photo of a {}", "a {} in the driveway", "a close-up photo of the {}",
             "there is a {} at the front door", "a black and white photo of a {}", "a night-time photo of a {}",
             "a {} parked in front of a house", "an empty street without a {}", "a low resolution photo of a {}"]
WORDS_EN = ["the", "garage", "door", "is", "open", "closed", "porch", "night", "rain", "snow", "yard",
            "camera", "motion", "detected", "front", "back", "gate", "window", "light", "shadow"]
WORDS_ACCENT = ["café", "crème", "brûlée", "naïve", "façade", "Über", "Straße", "Mädchen", "Größe",
                "señor", "niño", "mañana", "Łódź", "źdźbło", "zażółć", "gęślą", "jaźń", "Tiếng Việt",
                "phở", "Hà Nội", "Nguyễn", "İstanbul", "ığdır", "şehir", "ΟΔΟΣ", "Σοφία", "ψυχή",
                "Москва", "ёлка", "Київ", "Ελληνικά", "Ærøskøbing", "Đà Nẵng", "Þórr", "ǅemal"]
WORDS_CJK = ["猫", "狗", "汽车", "快递员", "日本語", "ねこ", "いぬ", "カメラ", "ドア", "ｶﾒﾗ", "ﾄﾞｱ", "고양이",
             "강아지", "자동차", "택배", "車庫", "東京", "北京", "ＡＢＣ", "１２３"]
EMOJI = ["🐈", "🐕", "🚗", "📦", "🦝", "👍", "👍🏽", "👋🏿", "❤️", "❤", "☀️", "🌧️", "🇺🇸", "🇯🇵", "🏳️‍🌈",
         "👨‍👩‍👧", "👩🏽‍💻", "🐈‍⬛", "1️⃣", "#️⃣", "*️⃣", "©️", "™️", "🫠", "🧑‍🤝‍🧑", "😀"]
PUNCT = ["!", "?", ".", ",", ";", ":", "-", "--", "...", "!!!", "?!", "(", ")", "[", "]", "{", "}", "<", ">",
         "/", "\\", "|", "#", "@", "$", "%", "^", "&", "*", "_", "=", "+", "~", "`", "\"", "'", "«", "»",
         "—", "–", "…", "·", "•", "§", "¶", "†", "‰", "€", "£", "¥", "¿", "¡", "“", "”", "‘", "’"]
WHITESPACE = [" ", "  ", "\t", "\n", "\r\n", "\r", "\x0b", "\x0c", "\u00a0", "\u2000", "\u2003", "\u2009",
              "\u200a", "\u2028", "\u2029", "\u202f", "\u205f", "\u3000", "\u0085", "\u1680", "\x1c", "\x1f"]
# (first, last) code points of scripts the random strings draw letters from; no surrogates (D800-DFFF).
SCRIPT_RANGES = [(0x41, 0x5A), (0x61, 0x7A), (0xC0, 0xFF), (0x100, 0x17F), (0x391, 0x3C9), (0x410, 0x44F),
                 (0x5D0, 0x5EA), (0x627, 0x64A), (0x905, 0x939), (0xE01, 0xE2E), (0x3041, 0x3096),
                 (0x30A1, 0x30FA), (0x4E00, 0x4FFF), (0xAC00, 0xAD00), (0x1F600, 0x1F64F), (0x300, 0x36F)]


def nfd(s: str) -> str:
    return unicodedata.normalize("NFD", s)


def hand_written() -> dict[str, list[str]]:
    c: dict[str, list[str]] = {}
    c["plain"] = [
        "a photo of a cat", "a delivery van parked in front of a house", "the garage door is open",
        "A RED Circle", "iPhone", "a photo of a PERSON", "Person", "a Photo Of A Dog.", "McDonald's",
        "YouTube", "eBay", "GPU", "a photo of a cat and a dog", "nothing", "x", "A", "I", "ok", "OK",
        "a car", "cars", "the the the", "someone walking up the driveway at night",
    ]
    c["apostrophes"] = [
        "don't", "it's", "I'LL", "rock 'n' roll", "I'm", "you're", "we've", "she'd", "they'll", "it'S",
        "WE'RE", "'s", "'", "''", "'''", "'t'", "o'clock", "y'all", "rock’n’roll", "don’t", "it‘s",
        "“quoted”", "‘single’", "„German“", "«French»", "don\u02bct", "it\u02bcs", "don`t", "don´t",
        "isn't it's", "the dog's bowl", "the dogs' bowls", "'sup", "s'il vous plaît", "l'été",
        "it'ſ", "dON'T", "I'D", "''s", "'re'", "rock ' n ' roll",
        # The word pattern is case-insensitive: a long s is an 's' after an apostrophe, and U+0345
        # (which folds to a letter) matches none of its classes.
        "'ſ", "'ſt", "'ſ'ſ", "it'ſ ſo", "ſ", "'Ｓ", "a\u0345b", "\u0345", "!\u0345!", "'\u0345s",
        "ι\u0345ι", "x\u1fbex", "'K'k",
    ]
    accents = [
        "café", "crème brûlée", "naïve façade", "Über Straße", "STRASSE", "ẞ", "señor niño", "Łódź",
        "zażółć gęślą jaźń", "Tiếng Việt", "phở bò", "İstanbul", "ISTANBUL", "ıi Iİ", "ΟΔΟΣ", "ΟΔΟΣ ΣΟΦΙΑ",
        "Σ", "ΣΑ", "ὈΔΥΣΣΕΎΣ", "Москва", "ЁЛКА", "Київ", "ǅemal", "Ǆ", "ﬀ", "\u212a", "\u2126", "\u212b",
        "Å", "é", "e\u0301", "E\u0301", "a\u0308", "n\u0303", "o\u0302\u0301", "e\u0301\u0301",
        "\u0301", "\u0301abc", "q\u0307", "Ǻ", "ȷ", "Æsir", "ŒUVRE", "Ĳssel", "ŉ", "Ⓐ",
    ]
    c["accents"] = accents + [nfd(w) for w in WORDS_ACCENT if nfd(w) != w]
    c["cjk"] = [
        "日本語のテキスト", "猫が好きです", "ひらがな", "カタカナ", "ｶﾀｶﾅ", "ﾊﾟﾝ", "ｶﾞｷﾞｸﾞ", "ｧｨｩｪｫ", "ｰ｡｢｣､･",
        "中文文本", "一只猫在门口", "快递员在门口", "한국어 텍스트", "고양이", "ㄱㄴㄷ", "각", "ＡＢＣ１２３！",
        "ｈｅｌｌｏ　ｗｏｒｌｄ", "猫\u3000犬", "。、「」『』【】〈〉《》", "！？（）：；", "〜～", "㈱", "㍻", "ⅰⅱ",
        "㎏", "｟｠", "ﾟ", "ﾞ", "〃々〆", "〇", "𠮷野家", "𪚥", "ｱｲｳｴｵ ｶｷｸｹｺ", "日本 English 混在", "cat猫dog犬",
    ]
    c["emoji"] = [
        "🐈", "emoji 🐈‍⬛ and 👍🏽", "👨‍👩‍👧", "👨‍👩‍👧‍👦", "👍🏻👍🏼👍🏽👍🏾👍🏿", "🇺🇸🇬🇧🇯🇵", "🇺", "🏴󠁧󠁢󠁳󠁣󠁴󠁿",
        "1️⃣2️⃣3️⃣", "#️⃣", "❤️", "❤", "☺", "☺️", "✌🏽", "🏳️‍🌈", "🧑‍🚀", "a🐕b", "cat🐈cat", "🐈🐈🐈",
        "😀😃😄", "\ufe0f", "a\ufe0fb", "\u20e3", "1\u20e3", "🅰️", "🆗", "😀!", "!😀", "(😀)", "✓✔✗", "★☆",
        "♥♡", "♀️", "⚠️ warning", "🔥🔥🔥 fire", "👁‍🗨", "🫶🏾", "🤷‍♀️",
    ]
    c["punctuation"] = [
        "!!!", "...", "a--b", "$5.99", "50%", "#hashtag", "@user", "C++", "e-mail", "<>", "()[]{}",
        "ﬁsh ﬂag oﬀ", "ﬃ ﬄ ﬅ ﬆ", "ﬁ", "a.b.c", "U.S.A.", "?!?!", "¿qué?", "¡hola!", "foo/bar", "a\\b",
        "x_y_z", "__init__", "a+b=c", "1+1=2", "~/.bashrc", "http://example.com/a?b=c&d=e",
        "user@example.com", "a—b–c", "…", "• item", "§ 1", "a|b", "`code`", "***", "<<<>>>", "->", "=>",
        "!=", "&&", "||", "**bold**", "a/b/c/d", "#1", "A&B", "C#", "f(x)", "[citation needed]",
        "\"double\"", "'single'", "--help", "-", "_", ".", "・", "¦", "‽", "⁇", "※",
    ]
    c["numbers"] = [
        "2024", "3.14159", "1,000,000", "١٢٣", "٣٫١٤", "۱۲۳", "१२३", "๑๒๓", "১২৩", "１２３", "²", "x²",
        "H₂O", "½", "¾ cup", "⅓", "Ⅻ", "ⅻ", "Ⅳ", "①②③", "⑴", "⒈", "0", "007", "-5", "+5", "1e10",
        "0x1F", "12:30", "2024-06-11", "v1.2.3", "10km", "5kg", "3rd", "1st place", "24/7", "99.9%",
        "$1,234.56", "€5", "ⅷ", "𝟙𝟚𝟛", "𝟘", "፩", "〡〢", "௰", "〺", "9\u20e3", "12345678901234567890",
    ]
    c["html"] = [
        "&amp; html &lt;entities&gt;", "&amp;", "&lt;", "&gt;", "&quot;", "&nbsp;", "a&nbsp;b", "&eacute;",
        "caf&eacute;", "&hearts;", "&amp", "&copy", "&copy 2024", "&notit;", "&not", "&notin;", "&#39;",
        "&#x27;", "&#128512;", "&#x1F600;", "&#X1F600;", "&amp;lt;", "&amp;amp;lt;", "&amp;amp;amp;",
        "&#0;", "&#xD800;", "&#x110000;", "&#150;", "&#128;", "&#x80;", "&#x9F;", "&#13;", "&#x0D;",
        "&#1;", "&#x7F;", "&#xFFFE;", "&bogus;", "&;", "&#;", "&#x;", "&", "& ", "AT&T", "R&D",
        "a < b &amp; c", "<b>bold</b> &amp; more", "&lt; <", "x<y &gt; z", "<&amp;>", "&AMP;", "&Amp;",
        "&LT;", "&Eacute;", "&eacute", "&Auml;&ouml;&uuml;", "&szlig;", "&mdash;", "&ndash;", "&hellip;",
        "&rsquo;", "&lsquo;", "&ldquo;hi&rdquo;", "&trade;", "&euro;", "&frac12;", "&sup2;", "&times;",
        "&#65;&#66;&#67;", "&#x41;&#x42;", "&#0065;", "&#x00000041;", "&#9999999999;", "&nbsp;&nbsp;x",
        "&#160;", "&#8203;", "&#x200B;", "&#x3000;", "&ThinSpace;", "&NewLine;", "&Tab;", "&fjlig;",
        "&lt;start_of_text&gt;", "&lt;end_of_text&gt;", "&lt;|endoftext|&gt;", "&apos;s", "it&apos;s",
        "&#39;s", "&amp;#39;",
    ]
    c["whitespace"] = [
        "", " ", "  ", "\t", "\n", "\r\n", " \t\n\r ", "  lots   of\twhitespace \n here ", "a  b", "a\tb",
        "a\nb", "a\r\nb", "a\rb", " leading", "trailing ", "\u00a0", "a\u00a0b", "\u00a0a\u00a0",
        "a\u2028b", "a\u2029b", "a\u202fb", "a\u205fb", "a\u3000b", "\u3000", "a\u0085b", "\u0085",
        "a\x1cb", "a\x1db", "a\x1eb", "a\x1fb", "\x1c\x1d\x1e\x1f", "a\u200bb", "\u200b", "a\u200db",
        "\u200d", "a\u200cb", "a\u2060b", "a\x0bb", "a\x0cb", "a\u1680b", "a\u180eb",
        "".join(chr(cp) for cp in range(0x2000, 0x200B)),
    ] + [f"a{chr(cp)}b" for cp in range(0x2000, 0x200B)]
    c["control"] = [
        "a\x00b", "\x00", "a\x01b", "a\x07b", "a\x08b", "a\x0eb", "a\x1bb", "a\x7fb", "\x7f", "a\x80b",
        "a\x81b", "a\x85b", "a\x8db", "a\x8fb", "a\x90b", "a\x91b", "a\x92b", "a\x93hi\x94", "a\x96b",
        "a\x9db", "a\x9fb", "\ufeffhello", "hel\ufefflo", "a\u200eb", "a\u200fb", "a\u202ab", "a\u202eb",
        "a\u2066b\u2069", "\x1b[31mred\x1b[0m", "\x1b[1;32mgreen bold\x1b[0m text", "\x1b]0;title\x07x",
        "\x1b", "a\x1b[b", "\ufffd", "a\ufffdb", "\ufffe", "\uffff", "\U0010ffff", "\ue000", "\U000e0041",
        "a\u00adb", "soft\u00adhyphen", "\u034f", "a\u061cb",
    ] + [f"x{chr(cp)}y" for cp in itertools.chain(range(0x00, 0x20), range(0x7F, 0xA0))
         if chr(cp) not in "\t\n\r"]
    c["special_tokens"] = [
        "<start_of_text>", "<end_of_text>", "<START_OF_TEXT>", "<END_OF_TEXT>", "<|endoftext|>",
        "<|startoftext|>", "a <start_of_text> b", "a<end_of_text>b", "<start_of_text><end_of_text>",
        "x<END_OF_TEXT>y", "<start_of_text", "start_of_text>", "< start_of_text >", "<start-of-text>",
        "<ſtart_of_text>", "<\u212aend_of_text>", "<end_of_text>>", "<<end_of_text>", "<|endoftext|> a",
        "[SEP] [CLS] [PAD] [UNK] [MASK]", "</w>", "a</w>b", "<unk>", "<pad>",
        "&lt;end_of_text&gt; via entity", "<end_of_text>'s",
    ]
    para = ("A delivery van pulled into the driveway just after seven in the morning, and the driver "
            "walked up to the porch carrying a large brown package, rang the doorbell twice, waited, and "
            "then left the box beside the garage door before driving off down the quiet suburban street.")
    c["long"] = [
        para, para * 3, "a " * 300, "a" * 2000, "猫" * 200, "日本語のテキスト" * 30, " ".join(["word"] * 100),
        "x" * 500, "ab" * 400, "😀" * 100, "1" * 200, "!" * 300, ". " * 200, "é" * 300, nfd("é") * 300,
        "supercalifragilisticexpialidocious" * 20, " ".join(str(i) for i in range(100)),
        " ".join(["a photo of a cat"] * 19), "a " * 74, "a " * 75, "a " * 76, "a " * 77,
        "&amp;" * 100, "ﬁ" * 200, "\u3000".join(["猫"] * 100),
    ]
    c["mojibake"] = [
        "cafÃ©", "â€œquotedâ€\x9d", "Ã¼ber", "doesnâ€™t", "seÃ±or", "Ã\xa0 la carte", "MÃ¼nchen",
        "Ã¢â‚¬Å“doubleÃ¢â‚¬\x9d", "â€\ufffd", "ðŸ˜€",
    ]
    return c


def generated(rng: random.Random) -> dict[str, list[str]]:
    """Seeded generated strings per category; 'random' is generated separately (it is filtered)."""
    g: dict[str, list[str]] = {k: [] for k in CATEGORIES}
    for t in TEMPLATES:
        for n in rng.sample(NOUNS, 5):
            s = t.format(n)
            g["plain"].append(rng.choice([s, s, s.capitalize(), s.upper(), s.title()]))
    for _ in range(25):
        w = rng.sample(WORDS_EN, 3)
        suf = rng.choice(["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "’s", "’t", "\u02bcs", "'S", "'LL",
                          "s'", "'x"])
        quote = rng.choice(["", "‘", "“", "'"])
        g["apostrophes"].append(f"{w[0]}{suf} {w[1]} {quote}{w[2]}")
    for _ in range(30):
        ws = rng.sample(WORDS_ACCENT, 2)
        s = " ".join(ws)
        g["accents"].append(rng.choice([s, nfd(s), s.upper(), s.lower(), nfd(s.upper())]))
    for _ in range(25):
        g["cjk"].append(rng.choice(["", " "]).join(rng.choices(WORDS_CJK, k=rng.randint(2, 5))))
    for _ in range(25):
        parts = rng.choices(EMOJI, k=rng.randint(1, 4)) + [rng.choice(NOUNS)]
        rng.shuffle(parts)
        g["emoji"].append(rng.choice(["", " "]).join(parts))
    for _ in range(25):
        w = rng.choice(WORDS_EN)
        p = "".join(rng.choices(PUNCT, k=rng.randint(1, 4)))
        g["punctuation"].append(rng.choice([f"{w}{p}", f"{p}{w}", f"{w}{p}{w}", f"{p} {w} {p}"]))
    digit_sets = ["0123456789", "٠١٢٣٤٥٦٧٨٩", "०१२३४५६७८९", "０１２３４５６７８９", "๐๑๒๓๔๕๖๗๘๙"]
    for _ in range(25):
        ds = rng.choice(digit_sets)
        num = "".join(rng.choices(ds, k=rng.randint(1, 8)))
        g["numbers"].append(rng.choice([num, f"{num}.{rng.choice(ds)}", f"{num} {rng.choice(NOUNS)}s",
                                        f"${num}", f"{num}%", f"#{num}", f"{num}x{num}"]))
    ents = ["&amp;", "&lt;", "&gt;", "&quot;", "&nbsp;", "&eacute;", "&hearts;", "&amp", "&copy", "&#39;",
            "&#x27;", "&#128512;", "&#150;", "&amp;lt;", "&bogus;", "&not", "&#x1F600;", "&reg;", "&para;"]
    for _ in range(30):
        w = rng.sample(WORDS_EN, 2)
        e = rng.choice(ents)
        g["html"].append(rng.choice([f"{w[0]} {e} {w[1]}", f"{w[0]}{e}{w[1]}", f"{w[0]} {e} <{w[1]}>",
                                     f"{e}{e}", f"<{w[0]}>{e}"]))
    for _ in range(30):
        parts = []
        for w in rng.sample(WORDS_EN, rng.randint(1, 4)):
            parts += ["".join(rng.choices(WHITESPACE, k=rng.randint(1, 3))), w]
        parts.append("".join(rng.choices(WHITESPACE, k=rng.randint(0, 2))))
        g["whitespace"].append("".join(parts))
    ctrl = ([chr(c) for c in range(0x00, 0x20) if chr(c) not in "\t\n\r"] + ["\x7f", "\ufeff", "\u200e",
            "\u200f", "\x1b[0m", "\x1b[31m", "\x1b[1;4m"] + [chr(c) for c in range(0x80, 0xA0)])
    for _ in range(25):
        w = rng.sample(WORDS_EN, 2)
        g["control"].append(f"{rng.choice(ctrl)}{w[0]}{rng.choice(ctrl)} {w[1]}{rng.choice(['', rng.choice(ctrl)])}")
    specials = ["<start_of_text>", "<end_of_text>", "<START_OF_TEXT>", "<End_Of_Text>", "<|endoftext|>"]
    for _ in range(15):
        w = rng.sample(WORDS_EN, 2)
        sp = rng.choice(specials)
        g["special_tokens"].append(rng.choice([f"{w[0]} {sp} {w[1]}", f"{w[0]}{sp}{w[1]}", f"{sp}{w[0]}",
                                               f"{sp}'s {w[1]}"]))
    for n in (70, 76, 80, 150):
        g["long"].append(" ".join(rng.choices(WORDS_EN + WORDS_ACCENT + WORDS_CJK + EMOJI, k=n)))
    return g


def random_string(rng: random.Random) -> str:
    """A string of 1-12 random pieces: words of the other categories, script letters, punctuation,
    whitespace, digits."""
    pieces = []
    for _ in range(rng.randint(1, 12)):
        kind = rng.randrange(7)
        if kind == 0:
            pieces.append(rng.choice(WORDS_EN + WORDS_ACCENT + WORDS_CJK))
        elif kind == 1:
            lo, hi = rng.choice(SCRIPT_RANGES)
            pieces.append("".join(chr(rng.randint(lo, hi)) for _ in range(rng.randint(1, 6))))
        elif kind == 2:
            pieces.append(rng.choice(PUNCT))
        elif kind == 3:
            pieces.append(rng.choice(WHITESPACE))
        elif kind == 4:
            pieces.append(rng.choice(EMOJI))
        elif kind == 5:
            pieces.append(str(rng.randint(0, 10**rng.randint(1, 6))))
        else:
            pieces.append(rng.choice(["'s", "'t", "'re", "'ll", "&amp;", "&lt;", "ﬁ", "ｶ", "Ａ", "İ", "Σ"]))
    return "".join(pieces)


# --------------------------------------------------------------------------------------------
# reference
# --------------------------------------------------------------------------------------------

def ftfy_changed(text: str) -> list[str]:
    """Fixes that change ftfy.fix_text(text) when turned off; pairs 'a+b' when no single one does but
    ftfy still changes the text."""
    import ftfy

    ref = ftfy.fix_text(text)
    off = lambda names: ftfy.fix_text(text, ftfy.TextFixerConfig(**{n: FTFY_FIXES[n] for n in names}))  # noqa: E731
    out = [n for n in FTFY_FIXES if off([n]) != ref]
    if not out and ref != text:
        out = [f"{a}+{b}" for a, b in itertools.combinations(FTFY_FIXES, 2) if off([a, b]) != ref]
        if not out:
            out = ["unattributed"]
    return out


def mojibake_repaired(changed: list[str]) -> bool:
    return any(MOJIBAKE_FIXES & set(c.split("+")) for c in changed if c != C1_PAIR)


def context_row(ids: list[int]) -> list[int]:
    row = [bl.SOT_TOKEN] + ids + [bl.EOT_TOKEN]
    if len(row) > bl.CONTEXT_LENGTH:
        row = row[:bl.CONTEXT_LENGTH]
        row[-1] = bl.EOT_TOKEN
    return row + [0] * (bl.CONTEXT_LENGTH - len(row))


def encodable(s: str) -> bool:
    try:
        s.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def build_corpus() -> list[tuple[str, str]]:
    """[(category, text)] in a fixed order, duplicates dropped (first category wins)."""
    rng = random.Random(SEED)
    hand, gen = hand_written(), generated(rng)
    corpus: list[tuple[str, str]] = []
    seen: set[str] = set()
    for cat in CATEGORIES:
        for s in hand.get(cat, []) + gen.get(cat, []):
            assert encodable(s), f"{cat}: {s!r} is not UTF-8 encodable"
            if s not in seen:
                seen.add(s)
                corpus.append((cat, s))
    assert sum(c == "mojibake" for c, _ in corpus) <= MAX_MOJIBAKE
    n = 0
    while n < N_RANDOM:
        s = random_string(rng)
        # redraw strings that ftfy's mojibake repair changes (random Latin-1 letters can look like it)
        if s in seen or not encodable(s) or mojibake_repaired(ftfy_changed(s)):
            continue
        seen.add(s)
        corpus.insert(len(corpus) - sum(c == "mojibake" for c, _ in corpus), ("random", s))
        n += 1
    return corpus


# --------------------------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------------------------

_INT_LIST = re.compile(r"\[\n\s*(-?\d+(?:,\n\s*-?\d+)*)\n\s*\]")
_NAME_LIST = re.compile(r'\[\n\s*("[a-z0-9_+]+"(?:,\n\s*"[a-z0-9_+]+")*)\n\s*\]')


def compact_lists(text: str) -> str:
    """Put lists of ints and of fix names on one line. Safe: the patterns need a real newline right
    after '[', which only json's indentation writes (strings escape newlines)."""
    one_line = lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",\n")) + "]"  # noqa: E731
    return _NAME_LIST.sub(one_line, _INT_LIST.sub(one_line, text))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(bl.REPO_ROOT / "tests/data/golden/tokenizer.json"))
    args = ap.parse_args()

    import ftfy
    import open_clip
    import regex
    from open_clip.tokenizer import SimpleTokenizer, default_bpe

    tok = SimpleTokenizer()
    assert tok.vocab_size == 49408 and tok.sot_token_id == bl.SOT_TOKEN and tok.eot_token_id == bl.EOT_TOKEN
    corpus = build_corpus()
    log(f"{len(corpus)} strings")

    entries = []
    per_fix: dict[str, int] = {}
    for cat, text in corpus:
        clean = tok.clean_fn(text)
        # the documented pipeline, spelled out, must agree with open_clip's clean_fn
        assert clean == " ".join(html.unescape(html.unescape(ftfy.fix_text(text))).strip().split()).lower()
        ids = tok.encode(text)
        changed = ftfy_changed(text)
        if cat != "mojibake" and mojibake_repaired(changed):
            raise SystemExit(f"{cat}: {text!r} is changed by ftfy's mojibake repair ({changed}); move it")
        for f in changed:
            per_fix[f] = per_fix.get(f, 0) + 1
        entries.append({"category": cat, "text": text, "clean": clean, "ids": ids, "context": context_row(ids),
                        "ftfy_changed": changed})

    # cross-check context rows against open_clip.tokenize itself
    got = open_clip.tokenize([e["text"] for e in entries]).tolist()
    assert got == [e["context"] for e in entries], "context rows differ from open_clip.tokenize"

    per_cat = {c: sum(e["category"] == c for e in entries) for c in CATEGORIES}
    vocab_sha = hashlib.sha256(gzip.open(default_bpe()).read()).hexdigest()
    doc = {
        "description": "OpenAI CLIP BPE tokenization by open_clip's SimpleTokenizer() (clean='lower'). "
                       "clean = lower(' '.join(strip(html.unescape(html.unescape(ftfy.fix_text(text)))).split())); "
                       "ids = BPE of the regex matches of clean (no start/end tokens, untruncated); context = "
                       "[sot] + ids + [eot] cut to context_length with eot last, padded with 0. ftfy_changed: "
                       "the ftfy.TextFixerConfig fixes whose removal changes ftfy.fix_text(text) ('a+b': only "
                       "both together). Written by tools/testdata/make_tokenizer_golden.py",
        "command": "tools/.venv/bin/python tools/testdata/make_tokenizer_golden.py",
        "versions": {"open_clip_torch": open_clip.__version__, "ftfy": ftfy.__version__,
                     "regex": regex.__version__, "python": platform.python_version()},
        "vocab": {"file": "open_clip/bpe_simple_vocab_16e6.txt.gz", "sha256_uncompressed": vocab_sha,
                  "size": tok.vocab_size},
        "seed": SEED,
        "context_length": bl.CONTEXT_LENGTH, "pad": 0, "sot": bl.SOT_TOKEN, "eot": bl.EOT_TOKEN,
        "summary": {"strings": len(entries), "per_category": per_cat,
                    "per_ftfy_fix": dict(sorted(per_fix.items())),
                    "ftfy_changes_text": sum(bool(e["ftfy_changed"]) for e in entries),
                    "truncated": sum(len(e["ids"]) + 2 > bl.CONTEXT_LENGTH for e in entries),
                    "empty_ids": sum(not e["ids"] for e in entries)},
        "entries": entries,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(compact_lists(json.dumps(doc, ensure_ascii=False, indent=1)) + "\n", encoding="utf-8")
    json.loads(out.read_text(encoding="utf-8"))  # still valid JSON
    log(f"wrote {out} ({out.stat().st_size} bytes): {per_cat}")
    log(f"ftfy fixes: {doc['summary']['per_ftfy_fix']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
