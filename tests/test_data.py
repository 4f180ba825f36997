"""lib.data on small text the tests make themselves: no corpus needed (the download is faked)."""

import hashlib

import pytest
import torch

from lib import data

TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n" * 20


def test_char_tokenizer_round_trip():
    tok = data.CharTokenizer.from_text(TEXT)
    assert tok.vocab_size == len(set(TEXT))
    assert tok.chars == "".join(sorted(set(TEXT)))
    assert tok.decode(tok.encode(TEXT)) == TEXT
    assert tok.decode(torch.tensor(tok.encode("hear"))) == "hear"
    assert data.CharTokenizer.from_dict(tok.to_dict()).chars == tok.chars


def test_unknown_character_is_named():
    tok = data.CharTokenizer.from_text(TEXT)
    with pytest.raises(ValueError, match=r"'Ω'.*the first, 'Ω', is character 6 of"):
        tok.encode("hear Ω")  # the 6th character, counted as a reader counts
    with pytest.raises(ValueError, match=r"the first, 'ζ', is character 1 of"):
        tok.encode("ζΩ")  # the first in the text, not the first in sorted order


def test_decode_out_of_range_is_clear():
    tok = data.CharTokenizer.from_text("ab")
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        tok.decode([0, 5])


def test_tokenizer_rejects_empty_or_repeated_vocabulary():
    with pytest.raises(ValueError):
        data.CharTokenizer("")
    with pytest.raises(ValueError):
        data.CharTokenizer("aa")


def test_split_is_contiguous():
    d = torch.arange(100)
    train, val = data.train_val_split(d, 0.1)
    assert torch.equal(train, torch.arange(90)) and torch.equal(val, torch.arange(90, 100))
    with pytest.raises(ValueError, match="val_fraction"):
        data.train_val_split(d, 1.0)


def test_get_batch_targets_are_inputs_shifted():
    d = torch.arange(1000)
    g = torch.Generator().manual_seed(0)
    x, y = data.get_batch(d, batch_size=8, block_size=16, generator=g)
    assert x.shape == y.shape == (8, 16)
    assert torch.equal(y, x + 1)  # on arange data, the next token is the token + 1
    assert int(y.max()) <= 999
    # same seed, same batch
    x2, _ = data.get_batch(d, 8, 16, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, x2)


def test_get_batch_reaches_the_last_token():
    d = torch.arange(10)
    x, y = data.get_batch(d, batch_size=200, block_size=9, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x[0], torch.arange(9)) and torch.equal(y[0], torch.arange(1, 10))


def test_too_little_data_is_refused():
    with pytest.raises(ValueError, match="fewer than one window"):
        data.get_batch(torch.arange(8), batch_size=1, block_size=8)
    with pytest.raises(ValueError, match="fewer than one window"):
        data.WindowDataset(torch.arange(8), block_size=8)


@pytest.mark.parametrize("stride", [1, 3, 16])
def test_window_dataset(stride):
    d = torch.arange(100)
    ds = data.WindowDataset(d, block_size=16, stride=stride)
    assert len(ds) == (100 - 16 - 1) // stride + 1
    for i in (0, len(ds) - 1):
        x, y = ds[i]
        assert torch.equal(x, torch.arange(i * stride, i * stride + 16))
        assert torch.equal(y, x + 1)
    last_x, last_y = ds[len(ds) - 1]
    assert int(last_y[-1]) <= 99
    with pytest.raises(IndexError):
        ds[len(ds)]
    loader = torch.utils.data.DataLoader(ds, batch_size=4)
    xb, yb = next(iter(loader))
    assert xb.shape == (4, 16)


def test_window_dataset_default_stride_tiles():
    ds = data.WindowDataset(torch.arange(1 + 4 * 16), block_size=16)
    starts = [int(ds[i][0][0]) for i in range(len(ds))]
    assert starts == [0, 16, 32, 48]


# --------------------------------------------------------------------------- the corpus file


def write(folder, content: bytes):
    path = folder / data.CORPUS_FILE
    path.write_bytes(content)
    return path


def test_data_dir_with_a_verified_file(tmp_path, monkeypatch):
    content = b"tiny corpus"
    write(tmp_path, content)
    monkeypatch.setattr(data, "CORPUS_SHA256", hashlib.sha256(content).hexdigest())
    assert data.corpus_path(tmp_path).read_text() == "tiny corpus"
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    assert data.corpus_path() == tmp_path / data.CORPUS_FILE


def test_data_dir_with_a_wrong_file_is_refused(tmp_path):
    write(tmp_path, b"not shakespeare")
    with pytest.raises(data.CorpusError, match="sha256"):
        data.corpus_path(tmp_path)


def test_data_dir_without_the_file_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    with pytest.raises(data.CorpusError) as err:
        data.corpus_path()
    assert str(tmp_path / data.CORPUS_FILE) in str(err.value)
    assert "COURSE_DATA_DIR" in str(err.value)


def fake_download(content: bytes):
    """A stand-in for pooch's HTTP downloader that writes `content`."""

    def download(url, output_file, pooch_obj, check_only=False):
        with open(output_file, "wb") as f:
            f.write(content)

    return download


def test_download_is_verified_and_cached(tmp_path, monkeypatch):
    content = b"downloaded corpus"
    monkeypatch.delenv("COURSE_DATA_DIR", raising=False)
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(data, "CORPUS_SHA256", hashlib.sha256(content).hexdigest())
    calls = []
    real = fake_download(content)

    def counting(*a, **k):
        calls.append(1)
        real(*a, **k)

    path = data.corpus_path(downloader=counting)
    assert path == tmp_path / data.CORPUS_FILE and path.read_bytes() == content
    data.corpus_path(downloader=counting)  # second call: served from the cache
    assert len(calls) == 1


def test_download_with_a_wrong_checksum_is_refused_and_not_cached(tmp_path, monkeypatch):
    monkeypatch.delenv("COURSE_DATA_DIR", raising=False)
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    with pytest.raises(data.CorpusError, match="sha256"):
        data.corpus_path(downloader=fake_download(b"tampered"))
    assert not (tmp_path / data.CORPUS_FILE).exists()


def test_offline_without_a_copy_says_what_to_do(tmp_path, monkeypatch):
    def offline(*a, **k):
        raise ConnectionError("no network")

    monkeypatch.delenv("COURSE_DATA_DIR", raising=False)
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    with pytest.raises(data.CorpusError) as err:
        data.corpus_path(downloader=offline)
    msg = str(err.value)
    assert str(tmp_path / data.CORPUS_FILE) in msg and "COURSE_DATA_DIR" in msg


def test_train_bpe_shortens_text():
    tok = data.train_bpe(TEXT, vocab_size=300)
    ids = tok.encode(TEXT)
    assert len(ids) < len(TEXT)
    assert tok.decode(ids) == TEXT
    with pytest.raises(ValueError, match="256"):
        data.train_bpe(TEXT, 100)


def test_encode_tensor_is_encode_in_bulk():
    tok = data.CharTokenizer.from_text(TEXT + "Ω\t")
    text = (TEXT + "Ω\t") * 3
    ids = tok.encode_tensor(text)
    assert ids.dtype == torch.long and ids.tolist() == tok.encode(text)
    assert tok.encode_tensor("").tolist() == []
    with pytest.raises(ValueError, match=r"'😀'.*character 3 of"):
        tok.encode_tensor(TEXT[:2] + "😀")  # beyond the table: the same clear error as encode
