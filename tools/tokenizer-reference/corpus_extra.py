"""A deterministic multilingual corpus for the tokenizer parity stage (≥1000 lines with the base corpus): many
scripts, emoji sequences, control and format characters, long numbers, whitespace runs, and the chat templates
around all of them. Pure Python (random.Random with a fixed seed is stable across versions), so the committed
fixture can be regenerated exactly."""
import random

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "She sells sea shells by the sea shore; the shells she sells are surely seashells.",
    "Dr. O'Neil's 3rd-floor office (Room 12B) opens at 9:45 a.m., doesn't it?",
    "Le cœur a ses raisons que la raison ne connaît point.",
    "Über allen Gipfeln ist Ruh, in allen Wipfeln spürest du kaum einen Hauch.",
    "¿Dónde está la biblioteca? ¡Está allí, señorita!",
    "A ligeira raposa marrom saltou sobre o cão preguiçoso — não é?",
    "Nel mezzo del cammin di nostra vita mi ritrovai per una selva oscura.",
    "Pchnąć w tę łódź jeża lub ośm skrzyń fig.",
    "Příliš žluťoučký kůň úpěl ďábelské ódy.",
    "Árvíztűrő tükörfúrógép.",
    "Şehrin içinden geçen ırmağın kıyısında çay içtik.",
    "Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "Жебракують філософи при ґанку церкви в Гадячі, ще й шатро їхнє п'яне знаємо.",
    "Τάχιστη αλώπηξ βαφής ψημένη γη, δρασκελίζει υπέρ νωθρού κυνός.",
    "ეს არის ქართული ტექსტი.",
    "Բարեւ, ինչպե՞ս ես։",
    "שלום עולם! זהו משפט בעברית.",
    "مرحبا بالعالم! هذه جملة باللغة العربية، أليس كذلك؟",
    "این یک جملهٔ فارسی است.",
    "یہ اردو کا ایک جملہ ہے۔",
    "नमस्ते दुनिया! यह एक हिंदी वाक्य है।",
    "আমি বাংলায় গান গাই।",
    "ਸਤਿ ਸ੍ਰੀ ਅਕਾਲ ਦੁਨੀਆ।",
    "வணக்கம் உலகம்! இது ஒரு தமிழ் வாக்கியம்.",
    "నమస్కారం ప్రపంచం.",
    "ನಮಸ್ಕಾರ ಜಗತ್ತು.",
    "ഹലോ ലോകം.",
    "สวัสดีชาวโลก นี่คือประโยคภาษาไทย",
    "ສະບາຍດີໂລກ",
    "မင်္ဂလာပါ ကမ္ဘာ",
    "សួស្តី​ពិភពលោក",
    "Xin chào thế giới! Đây là một câu tiếng Việt.",
    "Halo dunia! Ini adalah kalimat bahasa Indonesia.",
    "Kamusta ka, mundo?",
    "Habari ya dunia! Hii ni sentensi ya Kiswahili.",
    "ሰላም ልዑል! ይህ የአማርኛ ዓረፍተ ነገር ነው።",
    "ᐊᐃᓐᖓᐃ ᓄᓇ",
    "今天天气很好，我们去公园散步吧。",
    "我叫通义千问，是阿里云的开源大模型。",
    "今日はいい天気ですね。カタカナとひらがなと漢字。",
    "東京タワーは３３３メートルです。",
    "안녕하세요, 세계! 이것은 한국어 문장입니다.",
    "ᄀᄁᄂᄃ 한글 자모 ㄱㄴㄷ",
    "Ꭳꭳ ᏣᎳᎩ ᎦᏬᏂᎯᏍᏗ",
    "𝔗𝔥𝔢 𝕢𝕦𝕚𝕔𝕜 𝓫𝓻𝓸𝔀𝓷 𝖋𝖔𝖝 𝚓𝚞𝚖𝚙𝚜.",
    "ｆｕｌｌｗｉｄｔｈ　ＡＢＣ　１２３",
    "Ⅰ Ⅱ Ⅲ Ⅳ ⅰ ⅱ ⅲ ① ② ③ ⁴ ₅ ½ ¾",
    "∀x∈ℝ: x² ≥ 0 ⇒ √(x²) = |x|; ∑ᵢ aᵢ ≈ ∫ f(x) dx ≠ ∞.",
    "«Guillemets» „Anführungszeichen“ “curly” ‘single’ 「括弧」 『二重』",
    "e\u0301 a\u0300 o\u0308 n\u0303 c\u0327 A\u030a \u1e9b\u0323 \u0041\u030a\u0301",
    "\ufb01 \ufb02 \u2126 \u212b \u00c5 \u2163 \u3300 \uff76\uff9e",
]

EMOJI = [
    "😀", "😂🤣", "👍🏽", "👩‍💻", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇺🇸🇯🇵🇩🇪", "1️⃣#️⃣*️⃣", "❤️‍🔥", "🧑🏿‍🚀",
    "🙂🙃😉", "🐍🦀☕", "🎉✨🎂", "⚽️🏀", "🫠🫶🏻", "☺︎☺️", "👁️‍🗨️", "🇬🇧🏴󠁧󠁢󠁳󠁣󠁴󠁿",
]

CONTROL = [
    "\x00", "\x01", "\x07", "\x08", "\t", "\x0b", "\x0c", "\r", "\x1b[31m", "\x1f", "\x7f", "\x85", "\xa0",
    "\u00ad", "\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\u2028", "\u2029", "\u202e", "\u2060", "\ufeff",
    "\ufffd", "\U000e0001", "\u3000", "\u1680", "\u2009", "\u202f",
]

WHITESPACE = [" ", "  ", "   ", "    ", "\t", "\t\t", "\n", "\n\n", "\n\n\n", "\r\n", " \n ", "\t \n", "        "]

TEMPLATES = [
    lambda s: f"<|im_start|>assistant\n{s}<|im_end|>\n<|im_start|>assistant\n",
    lambda s: f"<|im_start|>assistant\n{s}<|im_end|>\n",
    lambda s: f"<|im_start|>user\n{s}<|im_end|>\n",
]


def numbers(rng):
    out = []
    for n in list(range(1, 41)) + [50, 64, 80, 100]:
        out.append("".join(rng.choice("0123456789") for _ in range(n)))
    for _ in range(20):
        a = rng.randrange(10**12)
        out += [f"{a:,}", f"{a / 7:.6f}", f"-{a % 100000}.{a % 97:02d}e{a % 30}", f"0x{a:X}", f"#{a % 10**6:06d}"]
    out += ["1,234,567.89", "1.234.567,89", "1 234 567", "12'345'678", "٣٤٥٦", "४२", "一二三四五", "Ⅻ", "3½"]
    return out


def random_text(rng, alphabet_ranges, n):
    chars = []
    for _ in range(n):
        lo, hi = rng.choice(alphabet_ranges)
        chars.append(chr(rng.randrange(lo, hi + 1)))
    return "".join(chars)


def generate():
    rng = random.Random(20260113)
    out = []
    # every sentence alone, with leading/trailing whitespace, and in each template
    for s in SENTENCES:
        out += [s, " " + s, s + "\n", s.upper(), s.lower()]
        out += [t(s) for t in TEMPLATES]
    # sentences joined with whitespace runs, emoji and control characters
    for i in range(220):
        a, b = rng.choice(SENTENCES), rng.choice(SENTENCES)
        glue = rng.choice(WHITESPACE + EMOJI + CONTROL)
        out.append(a + glue + b)
    for e in EMOJI:
        out += [e, f"Hello {e} world", f"{e}{e}", f"word{e}word", f" {e} "]
    for c in CONTROL:
        out += [c, f"a{c}b", f"{c}start", f"end{c}", f"x {c} y"]
    for w in WHITESPACE:
        out += [w, f"a{w}b", f"{w}lead", f"trail{w}", f"{w}mid{w}dle{w}"]
    for n in numbers(rng):
        out += [n, f"Call {n} now.", f"{n}{n}"]
    # random strings over many Unicode blocks (assigned, printable ranges), all lengths up to 48
    ranges = [(0x20, 0x7E), (0xA1, 0x24F), (0x370, 0x3FF), (0x400, 0x4FF), (0x530, 0x58F), (0x5D0, 0x5EA),
              (0x620, 0x64A), (0x900, 0x97F), (0x980, 0x9FF), (0xE01, 0xE5B), (0x10A0, 0x10FF), (0x1100, 0x11FF),
              (0x3041, 0x3096), (0x30A1, 0x30FA), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0x1F300, 0x1F64F),
              (0x2000, 0x206F), (0x2190, 0x22FF), (0xFF01, 0xFF5E), (0x1D400, 0x1D7FF), (0x0300, 0x036F)]
    for i in range(260):
        out.append(random_text(rng, ranges, 1 + i % 48))
    # the same random strings wrapped in the target template (what synthesis tokenizes)
    for i in range(60):
        out.append(TEMPLATES[i % 3](random_text(rng, ranges, 4 + i % 24)))
    # long inputs (a paragraph, a chapter opening)
    para = " ".join(rng.choice(SENTENCES) for _ in range(40))
    out += [para, para.replace(" ", "\n"), "\n\n".join(SENTENCES)]
    return out


if __name__ == "__main__":
    print(len(generate()))
