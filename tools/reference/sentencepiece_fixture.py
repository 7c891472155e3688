"""Writes packages/tokenizer/test/fixtures/sentencepiece-ids.json: ids that the real SentencePiece library gives for varied strings,
for the Llama-2 tokenizer.model and stories260K's tok512.model in ../shared (the test oracle for our conversion).

Run with Debian's python3-sentencepiece:  /usr/bin/python3 tools/reference/sentencepiece_fixture.py
"""
import json
import os
import random

import sentencepiece as spm

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, '..', '..', '..', 'shared')
MODELS = {
    'llama2': os.path.join(SHARED, 'tokenizers', 'llama2', 'tokenizer.model'),
    'tok512': os.path.join(SHARED, 'models', 'stories260K', 'tok512.model'),
}
WORDS = ['the', 'The', 'cat', 'sat', 'on', 'a', 'mat', 'Once', 'upon', 'time', 'little', 'girl', 'named', 'Lily',
         'Hello', 'world', "don't", "it's", 'über', 'naïve', 'café', 'Привет', 'мир', '日本語', '中文', '한국어',
         'مرحبا', 'שלום', 'ελληνικά', 'हिन्दी', '42', '3.14', '1,000', '2024-01-01', 'x1', 'snake_case', 'camelCase',
         'def', 'return', 'f(x)', '{', '}', '[]', '=>', '===', '#include', '<s>', '</s>', '<unk>', '<GIST_0>']
PUNCT = list('.,;:!?()[]{}<>"\'`~@#$%^&*-+=_/\\|')
EMOJI = ['😀', '🦙', '👍🏽', '🇫🇷', '👨‍👩‍👧', '❤️', '🙂', '∑', '√', '€', '\u200b', '\u00a0', '\u3000', 'é', 'é', '\ufeff', '\ufeffx']
SPACES = [' ', '  ', '   ', '\t', '\n', '\n\n', ' \n', '\r\n', '    ']


def random_text(rng: random.Random) -> str:
    parts = []
    if rng.random() < 0.2:
        parts.append(rng.choice(SPACES))
    for _ in range(rng.randint(0, 14)):
        r = rng.random()
        if r < 0.55:
            parts.append(rng.choice(WORDS))
        elif r < 0.7:
            parts.append(rng.choice(PUNCT))
        elif r < 0.8:
            parts.append(rng.choice(EMOJI))
        elif r < 0.9:
            parts.append(str(rng.randint(0, 10 ** rng.randint(1, 8))))
        else:
            parts.append(chr(rng.choice([rng.randint(0x20, 0x7e), rng.randint(0xa0, 0x2fff), rng.randint(0x1f300, 0x1faff)])))
        parts.append(rng.choice(SPACES) if rng.random() < 0.3 else ' ')
    if rng.random() < 0.3:
        parts.pop() if parts else None
    return ''.join(parts)


def main() -> None:
    out = {'generator': 'sentencepiece ' + spm.__version__ + ' (python3-sentencepiece), encode(text) without BOS', 'models': {}}
    for name, path in MODELS.items():
        sp = spm.SentencePieceProcessor(model_file=path)
        rng = random.Random(1234)
        texts = ['', ' ', '   ', '\n', 'Hello world', ' Hello  world ', 'a\n\nb', 'x  \n  y']
        # Runs of spaces (Llama's many equal-score '▁▁...' pieces) and tabs.
        texts += ['a' + ' ' * n + 'b' for n in range(1, 25)] + [' ' * n + 'x' for n in range(1, 17)] + ['\t' * n for n in range(1, 5)]
        texts += [random_text(rng) for _ in range(400)]
        out['models'][name] = [{'text': t, 'ids': sp.encode(t)} for t in texts]
    path = os.path.join(HERE, '..', '..', 'packages', 'tokenizer', 'test', 'fixtures', 'sentencepiece-ids.json')
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(out, f, ensure_ascii=False, separators=(',', ':'))
        f.write('\n')
    print('wrote', path, os.path.getsize(path), 'bytes')


if __name__ == '__main__':
    main()
