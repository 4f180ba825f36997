"""Post-training (lib.posttrain, lib.rewards), checked against hand computations: the loss mask
gives masked positions zero gradient, LoRA with B = 0 is the base model and merges into the
same function, DPO's loss on two tokens by hand, the reward on hand-made strings, and a
fine-tuned model that `python -m lib.sample` writes with."""

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from lib import posttrain as pt
from lib import rewards as rw
from lib.data import CharTokenizer
from lib.model import GPT, lm_loss
from tests.helpers import make_text, run, tiny_model_config, tiny_train_config

PLAY = ("KING:\nGood morrow, my lord.\nWhat news?\n\nLORD:\nNone, my king.\nAll is well.\n\n"
        "KING:\nThen go to bed.\n\nQUEEN:\nAy.\n")
TOK = CharTokenizer.from_text(PLAY + "$" + make_text(200))


def test_speeches_and_cue_reply_pairs():
    assert pt.speeches(PLAY)[1] == ["None, my king.", "All is well."]
    assert pt.cue_reply_pairs(PLAY) == [("What news?", "None, my king."),
                                        ("All is well.", "Then go to bed."),
                                        ("Then go to bed.", "Ay.")]


def test_make_pairs_lays_out_prompt_separator_response_and_masks_the_prompt():
    pairs = pt.make_pairs([("What news?", "Ay.")], TOK, block_size=16, prompt_chars=5)
    x, y, u = pairs.x[0], pairs.y[0], pairs.y_unmasked[0]
    assert TOK.decode(x[:10]) == "news?$Ay.\n"[:10]  # the prompt's tail, SEP, the response
    assert pairs.texts == [("news?", "Ay.")]
    # targets: the prompt's (and the separator's) ignored; "Ay.\n" counted; padding ignored
    assert (y[:5] == pt.IGNORE).all() and TOK.decode(y[5:9]) == "Ay.\n"
    assert (y[9:] == pt.IGNORE).all()
    assert TOK.decode(u[:9]) == "ews?$Ay.\n" and (u[9:] == pt.IGNORE).all()
    # a response too long for the window is left out; none left is an error that says why
    assert len(pt.make_pairs([("a", "e" * 20), ("b", "ok")], TOK, 16)) == 1
    with pytest.raises(ValueError, match="block_size"):
        pt.make_pairs([("a", "e" * 40)], TOK, 16)


def test_a_masked_position_gets_exactly_zero_gradient():
    torch.manual_seed(0)
    model = GPT(tiny_model_config(TOK.vocab_size))
    pairs = pt.make_pairs(pt.cue_reply_pairs(PLAY), TOK, 16)
    x = pairs.x[:1]
    logits = model(x)
    # the output at a masked position: its logits' gradient is exactly zero
    logits_grad = torch.autograd.grad(lm_loss(logits, pairs.y[:1]), logits)[0]
    masked = pairs.y[0] == pt.IGNORE
    assert masked.any() and (logits_grad[0, masked] == 0).all()
    assert (logits_grad[0, ~masked].abs().sum(-1) > 0).all()
    # and the mean is over the counted positions only (the masked ones are not in it)
    by_hand = F.cross_entropy(logits[0, ~masked], pairs.y[0, ~masked])
    assert torch.allclose(lm_loss(logits, pairs.y[:1]), by_hand)


def test_pair_batches_are_a_resumable_batch_source():
    pairs = pt.make_pairs(pt.cue_reply_pairs(PLAY), TOK, 16)
    a = pt.PairBatches(pairs, seed=3)
    state = a.state_dict()
    first = a.next(5)
    a.load_state_dict(state)
    again = a.next(5)
    assert all(torch.equal(p, q) for p, q in zip(first, again))
    assert torch.equal(pt.PairBatches(pairs, 3, masked=False).next(5)[1],
                       pairs.y_unmasked[torch.randint(len(pairs), (5,),
                                                      generator=torch.Generator().manual_seed(3))])


def test_lora_with_b_zero_is_the_base_model_and_merges_into_the_same_function():
    torch.manual_seed(0)
    config = tiny_model_config(TOK.vocab_size)
    base = GPT(config)
    x = torch.randint(TOK.vocab_size, (2, 16))
    want = base(x)
    adapted = GPT(config)
    adapted.load_state_dict(base.state_dict())
    params = pt.add_lora(adapted, rank=2, alpha=4.0)
    assert torch.equal(adapted(x), want)  # B = 0: exactly the base model
    d = config.n_embd
    per_block = 2 * (d + 3 * d) + 2 * (d + d) + 2 * (d + 4 * d) + 2 * (4 * d + d)  # r (in + out)
    assert pt.trainable_parameters(adapted) == sum(p.numel() for p in params) == 2 * per_block
    with torch.no_grad():
        for p in params:
            p.normal_(0, 0.1)  # as if trained
    with_adapters = adapted(x)
    assert not torch.allclose(with_adapters, want, atol=1e-3)
    pt.merge_lora(adapted)
    assert not any(isinstance(m, pt.LoRALinear) for m in adapted.modules())
    plain = GPT(config)
    plain.load_state_dict(adapted.state_dict())  # a plain GPT's keys
    assert torch.allclose(plain(x), with_adapters, atol=1e-5, rtol=1e-5)


def test_dpo_loss_on_a_two_token_example_by_hand():
    # Two one-token responses, token 0 chosen and token 1 rejected, after a one-token prompt.
    # Policy logits (2, 0) and reference logits (0, 0) at the response position.
    pi = torch.tensor([2.0, 0.0]).log_softmax(-1)
    ref = torch.tensor([0.0, 0.0]).log_softmax(-1)
    beta = 0.5
    # by hand: log pi(0) - log ref(0) = (2 - log(e^2 + 1)) + log 2; log pi(1) - log ref(1) =
    # -log(e^2 + 1) + log 2; the margin is their difference, 2; the loss -log sigmoid(0.5 * 2)
    want = -math.log(1 / (1 + math.exp(-1.0)))
    got = rw.dpo_loss(pi[0:1], pi[1:2], ref[0:1], ref[1:2], beta=beta)
    assert got.item() == pytest.approx(want, rel=1e-6)
    assert rw.dpo_loss(ref[0:1], ref[1:2], ref[0:1], ref[1:2]).item() == pytest.approx(math.log(2))


def test_sequence_logprobs_sum_the_counted_targets():
    torch.manual_seed(0)
    model = GPT(tiny_model_config(TOK.vocab_size))
    pairs = pt.make_pairs(pt.cue_reply_pairs(PLAY), TOK, 16)
    got = rw.sequence_logprobs(model, pairs.x, pairs.y)
    logp = model(pairs.x).log_softmax(-1)
    for b in range(len(pairs)):
        keep = pairs.y[b] != pt.IGNORE
        want = logp[b, keep].gather(-1, pairs.y[b, keep][:, None]).sum()
        assert got[b].item() == pytest.approx(want.item(), rel=1e-5)


def test_word_reward_on_hand_made_strings():
    vocab = rw.corpus_vocabulary("Good morrow, my lord. What news?")
    assert rw.word_reward("my lord", vocab) == 1.0
    assert rw.word_reward("my lurd, zzz", vocab) == pytest.approx(1 / 3)
    assert rw.word_reward("?!, .", vocab) == 0.0  # no words: nothing earned
    assert rw.word_reward("my lord", vocab, length_weight=0.5, target_words=4) == 1.25
    assert rw.reply("my lord\nKING: x") == "my lord"


def test_completion_mask_and_group_advantages():
    t = torch.tensor([[1, 2, 0, 3], [0, 1, 0, 2], [4, 4, 4, 4]])
    assert rw.completion_mask(t, 0).tolist() == [[True, True, True, False],
                                                 [True, False, False, False], [True] * 4]
    a = rw.group_advantages(torch.tensor([[1.0, 0.0, 1.0, 0.0], [2.0, 2.0, 2.0, 2.0]]))
    sd = torch.tensor([1.0, 0.0, 1.0, 0.0]).std()
    assert torch.allclose(a[0], torch.tensor([0.5, -0.5, 0.5, -0.5]) / (sd + 1e-4))
    assert (a[1] == 0).all()


def test_a_grpo_step_raises_the_reward_it_is_given():
    torch.manual_seed(0)
    config = tiny_model_config(TOK.vocab_size)
    policy, reference = GPT(config), GPT(config)
    reference.load_state_dict(policy.state_dict())
    target = TOK.encode("e")[0]
    reward = lambda text: text.count("e") / max(1, len(text))  # noqa: E731
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-2)
    prompt = torch.tensor([TOK.encode("KING$"), TOK.encode("LORD$")])
    gen = torch.Generator().manual_seed(0)
    kw = dict(group_size=8, new_tokens=8, end=TOK.encode("\n")[0], generator=gen)
    first = rw.grpo_step(policy, reference, prompt, reward, TOK.decode, opt, **kw)
    for _ in range(20):
        last = rw.grpo_step(policy, reference, prompt, reward, TOK.decode, opt, **kw)
    assert last["reward"] > first["reward"] + 0.2 and last["kl"] > 0
    assert F.softmax(policy(prompt)[:, -1], -1)[:, target].min() > 0.2
    with pytest.raises(ValueError, match="block_size"):
        rw.grpo_step(policy, reference, prompt, reward, TOK.decode, opt, **{**kw, "new_tokens": 16})


def test_fine_tuning_runs_on_the_trainer_and_its_checkpoint_samples(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    from lib.postruns import fine_tune_or_load

    text = PLAY * 30 + make_text(2000)
    tok = CharTokenizer.from_text(text + "$")
    ids = torch.tensor(tok.encode(text))
    corpus = dataclasses.make_dataclass("C", ["train", "val", "tokenizer"])(ids[:-500], ids[-500:], tok)
    torch.manual_seed(0)
    base = GPT(tiny_model_config(tok.vocab_size))
    pairs = pt.make_pairs(pt.cue_reply_pairs(PLAY), tok, 16)
    config = tiny_train_config(max_steps=40, lr=1e-2, warmup_steps=2)
    before = pt.response_loss(base, pairs)
    runs = {}
    for name, kw in {"full": {}, "lora": {"lora_rank": 2}, "scratch": {"from_scratch": True}}.items():
        runs[name] = fine_tune_or_load(base, config, pairs, corpus, **kw)
        assert pt.response_loss(runs[name].model, pairs) < before - 0.5, name
    assert runs["lora"].trainable < runs["full"].trainable
    assert runs["full"].trainable == base.num_parameters()
    again = fine_tune_or_load(base, config, pairs, corpus, lora_rank=2)  # from the cache
    assert torch.equal(again.model.transformer.h[0].attn.c_attn.weight,
                       runs["lora"].model.transformer.h[0].attn.c_attn.weight)
    adapted = GPT(base.config)  # the base with the run's trained adapters = the merged model
    adapted.load_state_dict(base.state_dict())
    pt.add_lora(adapted, rank=2, alpha=8.0)
    adapted.load_state_dict(again.adapters, strict=False)
    x = pairs.x
    assert torch.allclose(adapted(x), again.model(x), atol=1e-5)
    [path] = [p for p in (tmp_path / "cache" / "runs").glob("ft-*/ckpt.pt")
              if torch.load(p, weights_only=True)["meta"]["lora_rank"] == 2]
    res = run("lib.sample", "--checkpoint", str(path), "--prompt", "What news?$", "--tokens",
              "6", "--seed", "0", "--device", "cpu")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("What news?$") and len(res.stdout) > len("What news?$")


def test_a_reward_run_is_cached_and_starts_from_its_model(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    from lib.postruns import reward_run_or_load

    torch.manual_seed(0)
    start = GPT(tiny_model_config(TOK.vocab_size))
    prompts = torch.tensor([TOK.encode("KING$"), TOK.encode("LORD$")])
    vocab = rw.corpus_vocabulary(PLAY)
    kw = dict(steps=3, kl_weight=0.1, lr=1e-3, seed=0, new_tokens=8, length_weight=1.0)
    a = reward_run_or_load(start, prompts, vocab, TOK, **kw)
    b = reward_run_or_load(start, prompts, vocab, TOK, **kw)  # from the cache
    assert [r["step"] for r in a.history] == [1, 2, 3] and a.history == b.history
    assert all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters()))
    assert not torch.equal(a.model.lm_head.weight, start.lm_head.weight)  # start is untouched,
    assert len(list((tmp_path / "cache" / "runs").glob("rw-*/ckpt.pt"))) == 1  # a copy trained


def test_evaluate_replies_against_itself_has_zero_kl_and_scores_its_texts():
    torch.manual_seed(0)
    model = GPT(tiny_model_config(TOK.vocab_size))
    prompts = torch.tensor([TOK.encode("KING$"), TOK.encode("LORD$")])
    vocab = rw.corpus_vocabulary(PLAY)
    out = rw.evaluate_replies(model, model, prompts, vocab, TOK.decode, new_tokens=8,
                              end=TOK.encode("\n")[0], samples=3)
    assert out["kl"] == 0.0 and len(out["texts"]) == 6
    assert out["reward"] == pytest.approx(sum(rw.word_reward(t, vocab) for t in out["texts"]) / 6)
    assert out["length"] == sum(map(len, out["texts"])) / 6 and all("\n" not in t for t in out["texts"])
