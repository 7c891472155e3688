"""Fixture for @hyperllama/eval: NLTK's Porter stemmer (default NLTK_EXTENSIONS mode, the one rouge_score uses)
on a word list, and rouge_score-style ROUGE-L on text pairs.

Run: /usr/bin/python3 tools/reference/porter_reference.py /usr/share/common-licenses packages/eval/test/fixtures/porter_rouge.json
(needs Debian's python3-nltk; the words come from the English texts in the folder given, plus words that reach every
rule; the text pairs are random word sequences with noise, seeded).
"""
import json, os, random, re, sys
from nltk.stem import porter

text_dir, out = sys.argv[1], sys.argv[2]
stemmer = porter.PorterStemmer()
assert stemmer.mode == porter.PorterStemmer.NLTK_EXTENSIONS

rule_words = """caresses ponies ties caress cats feed agreed plastered bled motoring sing conflated troubled sized hopping
tanned falling hissing fizzed failing filing happy sky enjoy spy relational conditional rational valenci hesitanci
digitizer conformabli radicalli differentli vileli analogousli vietnamization predication operator feudalism decisiveness
hopefulness callousness formaliti sensitiviti sensibiliti triplicate formative formalize electriciti electrical hopeful
goodness revival allowance inference airliner gyroscopic adjustable defensible irritant replacement adjustment dependent
adoption homologou communism activate angulariti homologous effective bowdlerize probate rate cease controll roll
skies dying lying tying news innings outings cannings howe proceed exceed succeed dies died tied cried spied generously
fully logically archaeology analogies terribly notably cannabis yearly journeying syzygy toy ivy trees troubles private
oaten orrery generalization generalizations """.split()

words = set(rule_words)
for name in sorted(os.listdir(text_dir)):
    path = os.path.join(text_dir, name)
    if os.path.isfile(path):
        text = open(path, errors='replace').read()
        words.update(w for w in re.sub(r'[^a-z0-9]+', ' ', text.lower()).split() if len(w) > 3)
rng = random.Random(0)
words = sorted(words)
if len(words) > 3000:
    words = sorted(set(rng.sample(words, 3000)) | set(rule_words))


def noisy(tokens):
    # mixed case, punctuation, digits and non-ASCII between words, to exercise the tokenizer
    seps = [' ', ', ', '. ', ' - ', '\n', ' (', ') ', '; ', ' \u00e9t\u00e9 ', "'s ", ' 42 ', '/']
    out = ''
    for t in tokens:
        out += (t.upper() if rng.random() < 0.1 else t.capitalize() if rng.random() < 0.2 else t) + rng.choice(seps)
    return out.strip()


pairs = []
for _ in range(300):
    ref = [rng.choice(words) for _ in range(rng.randint(0, 12))]
    pred = [w for w in ref if rng.random() < 0.6]
    for _ in range(rng.randint(0, 5)):
        pred.insert(rng.randint(0, len(pred)), rng.choice(words))
    refs = [noisy(ref)] + [noisy([rng.choice(words) for _ in range(rng.randint(1, 6))]) for _ in range(rng.randint(0, 2))]
    pairs.append({'prediction': noisy(pred), 'references': refs})


def tokenize(text):
    # rouge_score.tokenize.tokenize with the stemmer on
    text = re.sub(r'[^a-z0-9]+', ' ', text.lower())
    tokens = [stemmer.stem(t) if len(t) > 3 else t for t in re.split(r'\s+', text)]
    return [t for t in tokens if re.match(r'^[a-z0-9]+$', t)]


def lcs(a, b):
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            table[i][j] = table[i - 1][j - 1] + 1 if a[i - 1] == b[j - 1] else max(table[i - 1][j], table[i][j - 1])
    return table[-1][-1]


def rouge_l(pred, ref):
    p, r = tokenize(pred), tokenize(ref)
    if not p or not r:
        return 0.0
    n = lcs(r, p)
    prec, rec = n / len(p), n / len(r)
    return 0.0 if prec + rec == 0 else 2 * prec * rec / (prec + rec)


for pair in pairs:
    pair['rougeL'] = 100 * max(rouge_l(pair['prediction'], ref) for ref in pair['references'])

json.dump({'source': 'nltk %s PorterStemmer(NLTK_EXTENSIONS); ROUGE-L per rouge_score with use_stemmer=True' % __import__('nltk').__version__,
           'stems': {w: stemmer.stem(w) for w in words}, 'rouge': pairs}, open(out, 'w'), indent=0, sort_keys=True)
print(len(words), 'words,', len(pairs), 'pairs ->', out)
