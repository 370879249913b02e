"""Readers on small files written by the tests: every format's quirks and every bad input."""

import json
import re

import pytest

from cotdistill.readers import (
    DatasetError,
    align_knowledge,
    load_split,
    read_captions,
    read_pgim_knowledge,
    write_conll,
)
from cotdistill.readers.common import DataFormatError, ImageResolver
from cotdistill.readers.conll import read_conll
from cotdistill.readers.jsonfiles import read_mae, read_wikidiverse
from cotdistill.readers.mepave import read_mepave
from cotdistill.readers.mnre import read_mnre


def write(path, text, newline="\n"):
    path.write_bytes(text.replace("\n", newline).encode("utf-8"))
    return path


TWO_POSTS = "IMGID:1\nRT\tO\n@x\tO\nObama\tB-PER\nPARIS\tI-LOC\n\u00a0\tO\n\nIMGID:2\n\ufe0f\tO\nNYC\tB-LOC\n"


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("trailing", ["", "\n", "\n\n"])
def test_conll_line_endings_and_last_block(tmp_path, newline, trailing):
    path = write(tmp_path / "test.txt", TWO_POSTS + trailing, newline)
    exs = read_conll(path, split="test", images=ImageResolver(None))
    assert [e.id for e in exs] == ["1", "2"]
    assert exs[0].tokens == ("RT", "@x", "Obama", "PARIS", "\u00a0")
    assert exs[1].tokens == ("\ufe0f", "NYC")
    # orphan I-LOC after B-PER starts a LOC entity (conlleval semantics); tags kept as written
    assert [e.key for e in exs[0].gold.entities] == [(2, 3, "PER"), (3, 4, "LOC")]
    assert exs[0].meta["tags"] == ["O", "O", "B-PER", "I-LOC", "O"]
    assert exs[0].text == "RT @x Obama PARIS \u00a0"


@pytest.mark.parametrize(
    "text, line, match",
    [
        ("IMGID:1\nObama B-PER\n", 2, "expected token<TAB>tag"),
        ("IMGID:1\nObama\tB-\n", 2, "bad tag 'B-'"),
        ("IMGID:1\nObama\tX-PER\n", 2, "bad tag 'X-PER'"),
        ("IMGID:1\n\nIMGID:2\na\tO\n", 1, "IMGID:1 has no token lines"),
        ("IMGID:1\na\tO\nIMGID:2\nb\tO\n", 3, "IMGID line inside a post"),
        ("a\tO\n", 1, "expected IMGID"),
        ("IMGID:1\na\tO\tO\n", 2, "2 tabs"),
        ("IMGID:1\na\tO\n\nIMGID:1\nb\tO\n", 4, "repeats"),
    ],
)
def test_conll_bad_input(tmp_path, text, line, match):
    path = write(tmp_path / "bad.txt", text)
    with pytest.raises(DataFormatError, match=match) as err:
        read_conll(path, split="test", images=ImageResolver(None))
    assert err.value.line == line and err.value.path == str(path)
    assert f"bad.txt:{line}:" in str(err.value)


def test_conll_invalid_utf8(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"IMGID:1\na\tO\nb\xff\tO\n")
    with pytest.raises(DataFormatError, match="invalid UTF-8") as err:
        read_conll(path, split="test", images=ImageResolver(None))
    assert err.value.line == 3


def test_conll_write_read_roundtrip(tmp_path):
    path = write(tmp_path / "a.txt", TWO_POSTS)
    exs = read_conll(path, split="test", images=ImageResolver(None))
    write_conll(tmp_path / "b.txt", exs)
    again = read_conll(tmp_path / "b.txt", split="test", images=ImageResolver(None))
    assert [(e.tokens, e.gold) for e in again] == [(e.tokens, e.gold) for e in exs]


def test_images_found_missing_and_unsafe(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    (images / "1.jpg").write_bytes(b"jpg")
    (tmp_path / "secret.jpg").write_bytes(b"x")
    (images / "link.jpg").symlink_to(tmp_path / "secret.jpg")
    write(tmp_path / "test.txt", TWO_POSTS)
    ds = load_split("twitter2015", tmp_path, "test")
    assert ds.examples[0].image == str(images / "1.jpg") and ds.examples[1].image is None
    assert (ds.report.images_found, ds.report.images_missing) == (1, 1)
    resolver = ImageResolver(images)
    for name in ["../secret.jpg", "../../etc/passwd", "/etc/passwd", "a/../../secret.jpg"]:
        with pytest.raises(DataFormatError, match="image name"):
            resolver.resolve(name, "f.txt", 3)
    assert resolver.resolve("link.jpg", "f.txt", 1) is None  # a link out of the directory is not followed
    # a link anywhere on the way counts too: a symlinked sub-folder, or a link inside a real sub-folder
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.jpg").write_bytes(b"secret")
    (images / "sub").symlink_to(outside)
    (images / "real").mkdir()
    (images / "real" / "y.jpg").symlink_to(outside / "x.jpg")
    (images / "real" / "z.jpg").write_bytes(b"jpg")
    resolver = ImageResolver(images)
    assert resolver.resolve("sub/x.jpg", "f.txt", 1) is None
    assert resolver.resolve("real/y.jpg", "f.txt", 1) is None
    assert resolver.resolve("real/z.jpg", "f.txt", 1) == str(images / "real" / "z.jpg")
    (images / "inner").mkdir()
    (images / "inner" / "ok.jpg").symlink_to(images / "1.jpg")  # a link that stays inside is followed
    assert resolver.resolve("inner/ok.jpg", "f.txt", 1) == str(images / "inner" / "ok.jpg")
    write(tmp_path / "train.txt", "IMGID:../../etc/passwd\na\tO\n")
    with pytest.raises(DataFormatError, match="outside the image directory"):
        load_split("twitter2015", tmp_path, "train")


def test_load_split_errors(tmp_path):
    with pytest.raises(DatasetError, match="unknown dataset 'twitter'; expected one of: twitter2015"):
        load_split("twitter", tmp_path, "test")
    with pytest.raises(DatasetError, match="unknown split"):
        load_split("mnre", tmp_path, "testing")
    with pytest.raises(DatasetError, match="no test file for mnre"):
        load_split("mnre", tmp_path, "test")


PGIM = (
    "RT\tO\nObama\tB-PER\n<EOS>\tX\nNamed\tX\nentities:1.\tX\nObama\tX\n(person)Reasoning:He\tX\nis.\tX\n\n"
    "NYC\tB-LOC\n<EOS>\tX\nNamed\tX\nentities:1.\tX\nNYC\tX\n(city)\tX\n"
)


def test_pgim_knowledge_and_alignment(tmp_path):
    blocks = read_pgim_knowledge(write(tmp_path / "k.txt", PGIM, "\r\n"))
    assert [b.text for b in blocks] == [
        "Named entities:1. Obama (person)Reasoning:He is.",
        "Named entities:1. NYC (city)",
    ]
    assert blocks[0].tokens == ["RT", "Obama"]
    conll = write(
        tmp_path / "test.txt",
        "IMGID:a\nRT\tO\nObama\tB-PER\n\nIMGID:b\nhello\tO\n\nIMGID:c\nNYC\tB-LOC\n\nIMGID:d\nlast\tO",
    )
    exs = read_conll(conll, split="test", images=ImageResolver(None))
    al = align_knowledge(exs, blocks)
    # b and d have no knowledge; c still gets its own block (no shift by one)
    assert al.knowledge == {"a": blocks[0].text, "c": blocks[1].text}
    assert al.missing_examples == ["b", "d"] and al.unmatched_blocks == []
    stray = read_pgim_knowledge(write(tmp_path / "k2.txt", "zzz\tO\n<EOS>\tX\nx\tX\n\n" + PGIM))
    al = align_knowledge(exs, stray)
    assert al.unmatched_blocks == [1] and "1 knowledge blocks matching no example" in al.summary()
    with pytest.raises(DataFormatError, match="no <EOS>"):
        read_pgim_knowledge(write(tmp_path / "k3.txt", "a\tO\n"))


def test_captions(tmp_path):
    caps = read_captions(write(tmp_path / "c.txt", "12.jpg :a dog : on grass\n17_06_1.jpg :x\n", "\r\n"))
    assert caps == {"12": "a dog : on grass", "17_06_1": "x"}
    with pytest.raises(DataFormatError, match=re.escape("c2.txt:1: expected '<id>.jpg :<caption>'")):
        read_captions(write(tmp_path / "c2.txt", "12.png - a dog\n"))


MNRE_LINE = "{'token': ['RT', 'Bill', 'Gates', 'Microsoft'], 'h': {'name': 'Bill Gates', 'pos': [1, 3]}, 't': {'name': 'Microsoft', 'pos': [3, 4]}, 'img_id': 'a.jpg', 'relation': '%s'}"


def test_mnre_reader_and_val_file_name(tmp_path):
    lines = [
        MNRE_LINE % "/per/org/member_of",
        MNRE_LINE % "None",
        MNRE_LINE.replace("[3, 4]", "[1, 2]") % "none",
    ]
    write(tmp_path / "mnre_val .txt", "\n".join(lines) + "\n")
    ds = load_split("mnre", tmp_path, "valid")
    rels = [ex.gold.relations[0] for ex in ds.examples]
    assert [r.label for r in rels] == ["/per/org/member_of", "None", "none"]
    assert (rels[0].head.start, rels[0].head.end, rels[0].head.text) == (1, 3, "Bill Gates")
    assert (rels[2].tail.start, rels[2].tail.end) == (1, 2)  # overlapping head and tail allowed
    assert [ex.id for ex in ds.examples] == ["valid-0", "valid-1", "valid-2"]


@pytest.mark.parametrize(
    "line, match",
    [
        ((MNRE_LINE % "None")[:-20], "not a Python dict literal"),
        ((MNRE_LINE % "None").replace("[3, 4]", "[3, 9]"), "'t' span \\[3, 9\\) is outside the 4 tokens"),
        ((MNRE_LINE % "None").replace("'relation': 'None'", "'rel': 'None'"), "record lacks relation"),
        ("__import__('os').system('true')", "not a Python dict literal"),
        ("['a']", "expected a dict literal"),
    ],
)
def test_mnre_bad_input(tmp_path, line, match):
    path = write(tmp_path / "x.txt", (MNRE_LINE % "None") + "\n" + line + "\n")
    with pytest.raises(DataFormatError, match=match) as err:
        read_mnre(path, split="train", images=ImageResolver(None))
    assert err.value.line == 2


def test_mepave_reader(tmp_path):
    (tmp_path / "vocab.label").write_text("[PAD]\n[UNK]\n材质\n闭合方式\n", encoding="utf-8")
    write(
        tmp_path / "jdai.jave.fashion.test.sample",
        "c_1\ts_1\t爱华仕搭扣真皮单肩包\t爱华仕<闭合方式>搭扣</闭合方式><材质>真皮</材质>单肩包\n",
    )
    ds = load_split("mepave", tmp_path, "test")
    ex = ds.examples[0]
    assert ex.id == "s_1" and ex.meta["cid"] == "c_1" and ex.tokens is None
    assert [(v.attribute, v.value, v.start, v.end) for v in ex.gold.values] == [
        ("闭合方式", "搭扣", 3, 5),
        ("材质", "真皮", 5, 7),
    ]
    assert all(ex.text[v.start : v.end] == v.value for v in ex.gold.values)


@pytest.mark.parametrize(
    "annotated, match",
    [
        ("a<颜色>b</颜色>", "unknown attribute tag <颜色>"),
        ("a<材质>b<材质>c</材质></材质>", "must not nest"),
        ("a<材质>b", "never closed"),
        ("ab</材质>", "closes nothing"),
        ("a<材质></材质>b", "empty value"),
        ("a<材质>x</材质>", "differs from the sentence"),
    ],
)
def test_mepave_bad_input(tmp_path, annotated, match):
    path = write(tmp_path / "m.txt", f"c\ts\tab\t{annotated}\n")
    with pytest.raises(DataFormatError, match=match) as err:
        read_mepave(path, split="test", images=ImageResolver(None), labels=["材质"])
    assert err.value.line == 1


def test_wikidiverse_reader(tmp_path):
    recs = [
        [
            "The Lions versus the Packers (2007).",
            "https://upload.wikimedia.org/x/0/06/Detroit%20Lions.jpg",
            "sports",
            [
                ["Lions", "Organization", 4, 9, "https://en.wikipedia.org/wiki/Detroit_Lions"],
                ["Packers", "Organization", 21, 28, "u"],
            ],
        ],
        [
            "Obama's visit to Paris-Nord.",
            "",
            "politics",
            [["Obama", "Person", 0, 5, "u"], ["Paris", "Location", 17, 22, "u"]],
        ],
    ]
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "Detroit Lions.jpg").write_bytes(b"x")
    (tmp_path / "test.json").write_text(json.dumps(recs), encoding="utf-8")
    ds = load_split("wikidiverse", tmp_path, "test")
    a, b = ds.examples
    assert [(e.text, e.type) for e in a.gold.entities] == [
        ("Lions", "Organization"),
        ("Packers", "Organization"),
    ]
    assert a.image.endswith("Detroit Lions.jpg") and a.meta["topic"] == "sports"
    # mention edges inside a word become token edges
    assert [e.text for e in b.gold.entities] == ["Obama", "Paris"]
    assert b.tokens[b.gold.entities[1].start : b.gold.entities[1].end] == ("Paris",)


@pytest.mark.parametrize(
    "recs, match",
    [
        ([["text", "u", "t", [["zzz", "Person", 0, 3, "u"]]]], "'zzz' is not in the text"),
        ([["text", "u", "t", [["te", "Person", 0, 9, "u"]]]], "outside the 4 characters"),
        ([{"text": "x"}], "expected \\[text, img_url"),
    ],
)
def test_wikidiverse_bad_input(tmp_path, recs, match):
    (tmp_path / "test.json").write_text(json.dumps(recs), encoding="utf-8")
    with pytest.raises(DataFormatError, match=match):
        read_wikidiverse(tmp_path / "test.json", split="test", images=ImageResolver(None))
    (tmp_path / "broken.json").write_text('[["a",\n "b"', encoding="utf-8")
    with pytest.raises(DataFormatError, match="invalid JSON") as err:
        read_wikidiverse(tmp_path / "broken.json", split="test", images=ImageResolver(None))
    assert err.value.line == 2


def test_mae_reader(tmp_path):
    recs = [
        {
            "id": "p1",
            "clean_title": "Red Leather Bag",
            "clean_text": "A bag.",
            "specs": {"color": "red", "brand": "Acme"},
            "images": ["p1.jpg"],
        }
    ]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in recs) + "\n", encoding="utf-8")
    ds = load_split("mae", tmp_path, "train")
    ex = ds.examples[0]
    assert ex.id == "p1" and ex.text == "Red Leather Bag\nA bag."
    assert [(v.attribute, v.value, v.start, v.end) for v in ex.gold.values] == [
        ("color", "red", 0, 3),
        ("brand", "Acme", None, None),
    ]
    assert ds.report.images_missing == 1
    (tmp_path / "test.json").write_text(json.dumps([{"specs": "x"}]), encoding="utf-8")
    with pytest.raises(DataFormatError, match="'specs' must be an object"):
        read_mae(tmp_path / "test.json", split="test", images=ImageResolver(None))


def test_hf_dataset_roundtrip(tmp_path):
    from cotdistill.readers import examples_from_hf_dataset, to_hf_dataset

    (tmp_path / "images").mkdir()
    from PIL import Image

    Image.new("RGB", (4, 3), "red").save(tmp_path / "images" / "1.jpg")
    write(tmp_path / "test.txt", TWO_POSTS)
    exs = load_split("twitter2015", tmp_path, "test").examples
    ds = to_hf_dataset(exs)
    assert ds[0]["image"].size == (4, 3) and ds[1]["image"] is None
    assert examples_from_hf_dataset(ds) == exs


def test_duplicate_ids_empty_files_and_bad_image_lists_are_input_errors(tmp_path):
    mepave = tmp_path / "mepave"
    mepave.mkdir()
    write(
        mepave / "jdai.jave.fashion.test",
        "1\t7\t红色上衣\t<颜色>红色</颜色>上衣\n2\t7\t蓝色上衣\t<颜色>蓝色</颜色>上衣\n",
    )
    with pytest.raises(DataFormatError, match=r"test:2: example id '7' appears twice \(first at line 1\)"):
        load_split("mepave", mepave, "test")
    mae = tmp_path / "mae"
    mae.mkdir()
    product = {"clean_title": "red shirt", "clean_text": "a red shirt", "specs": {"color": "red"}}
    write(mae / "test.json", json.dumps([{**product, "id": "p1"}, {**product, "id": "p1"}]))
    with pytest.raises(DataFormatError, match="example id 'p1' appears twice"):
        load_split("mae", mae, "test")
    write(mae / "test.json", json.dumps([{**product, "images": "a.jpg"}]))
    with pytest.raises(DataFormatError, match=r"'images' must be a list of file names, got 'a\.jpg'"):
        load_split("mae", mae, "test")
    write(tmp_path / "test.txt", "")
    with pytest.raises(DataFormatError, match="no twitter2015 examples in the file"):
        load_split("twitter2015", tmp_path, "test")
