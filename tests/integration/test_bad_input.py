"""Bad input fails loudly and names the file or key - non-finite data, typed configs, the
command line, audio formats, TIMIT speaker lists, paths - and trained models never go stale."""
import logging
import re
import struct
import subprocess
import sys
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import torch

from conftest import RECIPE, link_recipe, run_script
from nnet_fixtures import write_split
from pyscripts.kaldi.audio import audio_info, decode_audio, read_audio, wav_bytes, wav_scp_entry, write_wav
from pyscripts.errors import DataError
from pyscripts.nnet import train as nnet_train

pytestmark = pytest.mark.usefixtures("one_torch_thread")
NARROW = ["model.conv1_channels=4", "model.conv2_channels=8", "model.fc_dim=16", "training.batch_size=32",
          "training.max_epochs=2", "training.frames_per_epoch=200", "training.eval_batch_size=256",
          "training.channels_last=false"]


def save_model(path, num_targets=3, nan=False):
    cfg = nnet_train.load_config(RECIPE / "conf/convnet_asr.yaml", NARROW)
    torch.manual_seed(0)
    model = nnet_train.build_model(num_targets, 40, cfg["model"]).eval()
    if nan:
        with torch.no_grad():
            model.layer6.weight.fill_(float("nan"))
    torch.save(nnet_train.package_model(model, cfg, torch.ones(num_targets, dtype=torch.long), 1, {}, []), path)
    return path


def speech(seconds=1.0, rate=16000):
    t = np.arange(int(seconds * rate)) / rate
    return (3000 * np.sin(2 * np.pi * 150 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.int16)


# ---------------------------------------------------------------- 1. non-finite data
def test_nan_in_training_features_names_utterance_and_file(tmp_path):
    from pyscripts.nnet.data import load_frame_set
    write_split(tmp_path / "d", tmp_path / "t", nan_utt="utt003")
    with pytest.raises(DataError, match=r"feats\.scp: utterance utt003: 1 NaN or inf values \(the first in frame 7\)"):
        load_frame_set(tmp_path / "d", tmp_path / "t")


def test_nan_features_stop_cmvn_stats_and_feature_extraction(tmp_path, monkeypatch):
    from pyscripts.kaldi import features
    write_split(tmp_path / "d", tmp_path / "t", nan_utt="utt001")
    with pytest.raises(DataError, match=r"feats\.scp: utterance utt001: 1 NaN"):
        features.compute_cmvn_stats(tmp_path / "d", tmp_path / "cmvn.mat", per_speaker=False)
    data = tmp_path / "audio"
    data.mkdir()
    write_wav(data / "a.wav", 16000, speech())
    (data / "wav.scp").write_text(f"utt_a {data / 'a.wav'}\n")
    monkeypatch.setattr(features, "compute_features", lambda kind, opts, samples: np.full((5, 40), np.inf))
    with pytest.raises(DataError, match=r"wav\.scp: features of utterance utt_a: 200 NaN or inf"):
        features.make_feats("fbank", RECIPE / "conf/fbank.conf", data, tmp_path / "f.ark", tmp_path / "f.scp")


def test_forward_pass_refuses_nan_features_and_a_nan_model(tmp_path):
    from pyscripts.asr.hybrid import ForwardOptions, compute_loglikes
    write_split(tmp_path / "d", tmp_path / "t", nan_utt="utt002")
    model = save_model(tmp_path / "final.pt")
    with pytest.raises(DataError, match=r"feats\.scp: utterance utt002: 1 NaN"):
        compute_loglikes(model, tmp_path / "d/feats.scp", tmp_path / "dec/loglikes.1.ark",
                         ForwardOptions(device="cpu"))
    write_split(tmp_path / "ok", tmp_path / "t")
    (tmp_path / "nan").mkdir()
    broken = save_model(tmp_path / "nan/final.pt", nan=True)
    with pytest.raises(DataError, match=r"nan/final\.pt: log-posteriors of utterance utt000 .*NaN"):
        compute_loglikes(broken, tmp_path / "ok/feats.scp", tmp_path / "dec/loglikes.1.ark",
                         ForwardOptions(device="cpu"))


def test_decoder_refuses_nan_loglikes_naming_the_utterance(tmp_path, monkeypatch):
    from pyscripts.asr import decode

    class NeverCalled:
        def __init__(self, *args):
            pass

        def decode(self, loglikes, utt):
            raise AssertionError("a NaN matrix reached the decoder")
    monkeypatch.setattr(decode, "load_tid2pdf", lambda mdl: np.arange(3))
    monkeypatch.setattr(decode, "GraphDecoder", NeverCalled)
    bad = np.zeros((4, 3), dtype=np.float32)
    bad[2, 1] = np.nan
    with pytest.raises(DataError, match=r"loglikes\.1\.ark: log-likelihoods of utterance u7: 1 NaN"):
        decode.decode_matrices("HCLG.fst", "final.mdl", [("u7", bad)], tmp_path, 1,
                               decode.DecoderOptions(decoder="faster"), source="loglikes.1.ark")


def test_training_stops_on_a_nan_loss_and_keeps_the_last_good_epoch(tmp_path, monkeypatch):
    write_split(tmp_path / "tr", tmp_path / "tr_tg", seed=1)
    write_split(tmp_path / "dv", tmp_path / "dv_tg", num_utts=3, seed=2)
    cross_entropy, calls = torch.nn.functional.cross_entropy, []

    def nan_in_epoch_2(logits, y, **kw):  # the training loss (no kwargs) of the 3rd batch of epoch 2
        loss = cross_entropy(logits, y, **kw)
        if not kw:
            calls.append(1)
            if len(calls) == 7 + 3:  # 200 frames / 32 = 7 batches per epoch
                return loss * float("nan")
        return loss
    monkeypatch.setattr(torch.nn.functional, "cross_entropy", nan_in_epoch_2)
    cfg = nnet_train.load_config(RECIPE / "conf/convnet_asr.yaml", NARROW)
    exp = tmp_path / "exp"
    with pytest.raises(DataError, match=r"epoch 2/2: the training loss became NaN or inf at batch 3"):
        nnet_train.train(cfg, tmp_path / "tr", tmp_path / "dv", tmp_path / "tr_tg", tmp_path / "dv_tg", exp, "cpu")
    assert not (exp / "final.pt").exists()
    ckpt = torch.load(exp / "checkpoint.pt", weights_only=True)
    assert ckpt["state"]["epoch"] == 1 and all(torch.isfinite(v).all() for v in ckpt["model"].values()
                                              if v.is_floating_point())


# ---------------------------------------------------------------- 2. typed configs
@pytest.mark.parametrize("line, message", [
    ("  channels_last: \"false\"", r"training\.channels_last is 'false' \(str\); expected bool"),
    ("  max_epochs: two", r"training\.max_epochs is 'two' \(str\); expected int"),
    ("  batch_size: 1", r"training\.batch_size is 1; expected a value >= 2"),
])
def test_config_values_are_type_checked_when_loaded(tmp_path, line, message):
    conf = tmp_path / "my.yaml"
    conf.write_text(f"base: {RECIPE}/conf/convnet_asr.yaml\ntraining:\n{line}\n")
    with pytest.raises(DataError, match=rf"config {conf}: {message}"):
        nnet_train.load_config(conf)


def test_config_error_comes_before_any_data_is_read_or_written(tmp_path):
    conf = tmp_path / "my.yaml"
    conf.write_text(f"base: {RECIPE}/conf/convnet_asr.yaml\nmodel:\n  dropout: \"0.1\"\n")
    proc = subprocess.run([sys.executable, "-m", "pyscripts.nnet.train", "--config", conf, "no/train", "no/dev",
                           "no/train_tg", "no/dev_tg", tmp_path / "exp"], cwd=RECIPE, capture_output=True, text=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"config {conf}: model.dropout is '0.1' (str); expected number" in proc.stderr
    assert not (tmp_path / "exp").exists()
    with pytest.raises(DataError, match=r"with --set optimizer.lr=1e-3: optimizer.lr is '1e-3' .*1.0e-3"):
        nnet_train.load_config(RECIPE / "conf/convnet_asr.yaml", ["optimizer.lr=1e-3"])


# ---------------------------------------------------------------- 3. command line
def test_parse_options_never_evaluates_what_it_parses(tmp_path):
    script = tmp_path / "s.sh"
    script.write_text(f"nj=1\nflag=false\n. {RECIPE}/utils/parse_options.sh\necho \"nj=$nj flag=$flag\"\n")
    for args in (["--nj", "x[$(touch PWNED)]"], ["--nj[$(touch PWNED)]", "1"], ["--flag", "yes"]):
        proc = run_script(["bash", script, *args], cwd=tmp_path, check=False)
        assert proc.returncode != 0 and not (tmp_path / "PWNED").exists(), proc.stderr
    assert "takes an integer, not 'x[$(touch PWNED)]'" in run_script(
        ["bash", script, "--nj", "x[$(touch PWNED)]"], cwd=tmp_path, check=False).stderr
    proc = run_script(["bash", script, "--nj", "-3", "--flag", "true"], cwd=tmp_path)
    assert proc.stdout.strip() == "nj=-3 flag=true"


def test_run_sh_help_lists_the_stages_and_defaults(tmp_path):
    proc = run_script(["./run.sh", "--help"], cwd=link_recipe(tmp_path / "recipe"))
    stages = [line.split("\t")[0].strip() for line in proc.stderr.splitlines() if "\t" in line]
    assert stages == [str(n) for n in range(1, 14)]
    assert "  11\tSER: frame labels (emotion + sil), --ser-protocol folds" in proc.stderr
    assert "Defaults: --corpus demo --nj 4 --stage 1 --stop-stage 13 --ser-protocol paper" in proc.stderr


@pytest.mark.parametrize("args, message", [  # (--stop-stage 0: without the checks, nothing heavy runs)
    (["--stop-stage", "0", "--stage", "nj[$(touch PWNED)]"], "option --stage takes an integer"),
    (["--stop-stage", "0", "--nj[$(touch PWNED)]", "2"], "unknown option --nj[$(touch PWNED)]"),
    (["--stage", "abc"], "option --stage takes an integer, not 'abc'"),
    (["--stage", "99"], "--stage 99: there is no such stage (1..13)"),
    (["--stage", "5", "--stop-stage", "3"], "--stage 5 is after --stop-stage 3"),
    (["--stop-stage", "0", "--nj", "0"], "--nj 0: at least one job is needed"),
    (["--stop-stage", "0", "--ser-protocol", "nope"],
     "--ser-protocol nope: no such protocol; the protocols are paper loso10 superb"),
    (["--stop-stage", "0", "--nnet-profile", "fast"],
     "--nnet-profile fast: no such profile; the profiles are paper demo tiny"),
])
def test_run_sh_refuses_bad_stage_and_nj(tmp_path, args, message):
    work = link_recipe(tmp_path / "recipe")
    proc = run_script(["./run.sh", "--corpus", "tiny", "--skip-setup", "true", "--corpus-dir", tmp_path / "c",
                       *args], cwd=work, check=False)
    assert proc.returncode == 1 and message in proc.stderr, proc.stdout + proc.stderr
    assert not (work / "PWNED").exists() and not (work / "data").exists()


# ---------------------------------------------------------------- 6. paths
@pytest.mark.parametrize("name", ["my recipe", "a;b"])
def test_run_sh_refuses_a_recipe_dir_kaldi_cannot_handle(tmp_path, name):
    work = link_recipe(tmp_path / name)
    proc = run_script(["./run.sh", "--corpus", "tiny", "--skip-setup", "true", "--corpus-dir", tmp_path / "c",
                       "--stage", "0", "--stop-stage", "0"], cwd=work, check=False)
    assert proc.returncode == 1 and f"the path '{work}' has a space or a shell character" in proc.stderr
    assert not (work / "data").exists()


# ---------------------------------------------------------------- 4. audio
def riff(fmt_chunk, samples_bytes):
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt_chunk)) + fmt_chunk + \
        b"data" + struct.pack("<I", len(samples_bytes)) + samples_bytes
    return b"RIFF" + struct.pack("<I", len(body)) + body


def extensible_fmt(bits, channels=1, rate=16000, sub_format=1):
    block = channels * bits // 8
    guid = struct.pack("<H", sub_format) + bytes.fromhex("000000001000800000aa00389b71")
    return struct.pack("<HHIIHHHHI", 0xFFFE, channels, rate, rate * block, block, bits, 22, bits, 4) + guid


def test_extensible_16_bit_wav_reads_like_plain_pcm(tmp_path):
    samples = speech(0.1)
    data = riff(extensible_fmt(16), samples.astype("<i2").tobytes())
    rate, got = decode_audio(data, "ext.wav")
    assert rate == 16000 and np.array_equal(got, samples)
    (tmp_path / "ext.wav").write_bytes(data)
    assert audio_info(tmp_path / "ext.wav") == ("riff", 16000, 1, len(samples))
    assert np.array_equal(decode_audio(wav_bytes(16000, samples))[1], samples)  # plain PCM still reads


@pytest.mark.parametrize("encoding", ["pcm8", "pcm24", "pcm32", "float32", "float64", "extensible-float"])
def test_other_pcm_and_float_wavs_read_on_the_16_bit_scale(tmp_path, encoding):
    samples = speech(0.05)
    values = samples.astype(np.float64) / 32768
    if encoding == "pcm8":  # unsigned, 8 bits: the 16-bit value is known to within 128
        stored, tolerance = (np.round(values * 128) + 128).astype(np.uint8).tobytes(), 128
    elif encoding == "pcm24":
        stored, tolerance = b"".join((int(v) * 256 + 17).to_bytes(3, "little", signed=True) for v in samples), 0
    elif encoding == "pcm32":
        stored, tolerance = (samples.astype("<i4") * 65536 + 300).tobytes(), 0
    else:
        stored, tolerance = values.astype("<f8" if encoding == "float64" else "<f4").tobytes(), 0
    if encoding == "extensible-float":
        head = extensible_fmt(32, sub_format=3)
    else:
        tag, bits = {"pcm8": (1, 8), "pcm24": (1, 24), "pcm32": (1, 32), "float32": (3, 32),
                     "float64": (3, 64)}[encoding]
        head = struct.pack("<HHIIHH", tag, 1, 16000, 16000 * bits // 8, bits // 8, bits)
    path = tmp_path / f"{encoding}.wav"
    path.write_bytes(riff(head, stored))
    rate, got = read_audio(path)
    assert rate == 16000 and np.abs(got.astype(int) - samples).max() <= tolerance
    fmt_name, _, _, count = audio_info(path)
    assert fmt_name.startswith("riff/") and count == len(samples)
    # Kaldi reads only 16-bit PCM: data prep hands it these files through the conversion pipe.
    entry = wav_scp_entry(path, fmt_name)
    assert entry == f"python3 -m pyscripts.kaldi.audio to-wav {path} |"
    assert np.array_equal(read_audio(entry.replace("python3", sys.executable, 1) + " ")[1], got)


def test_unreadable_encodings_are_refused_with_the_conversion(tmp_path):
    path = tmp_path / "alaw.wav"
    path.write_bytes(riff(struct.pack("<HHIIHH", 6, 1, 8000, 8000, 1, 8), b"\0" * 40))
    for call in (lambda: read_audio(path), lambda: audio_info(path)):
        with pytest.raises(DataError, match=rf"{path}: 8-bit samples of format 6 .*sox {path} -b 16"):
            call()


def test_inference_converts_stereo_and_44k_files_and_reports_bad_ones(tmp_path):
    model = save_model(tmp_path / "final.pt", num_targets=5)
    good, rate44, stereo, bad = (tmp_path / f"{n}.wav" for n in ("good", "cd", "stereo", "bad"))
    write_wav(good, 16000, speech())
    write_wav(rate44, 44100, speech(rate=44100))
    interleaved = np.repeat(speech(), 2).astype("<i2").tobytes()
    stereo.write_bytes(riff(struct.pack("<HHIIHH", 1, 2, 16000, 64000, 4, 16), interleaved))
    bad.write_text("not audio")
    proc = subprocess.run([sys.executable, "-m", "pyscripts.infer", "emotion", "--model", model, stereo, bad, good,
                           rate44], cwd=RECIPE, capture_output=True, text=True)
    assert proc.returncode == 1
    assert [line.split()[0] for line in proc.stdout.splitlines()] == [str(stereo), str(good), str(rate44)]
    assert f"{stereo}: 2 channels mixed down to one" in proc.stderr
    assert f"{rate44}: resampled from 44100 to 16000 Hz" in proc.stderr
    assert f"1 of 4 files failed (see above): {bad}" in proc.stderr
    # The same speech gives the same decision at either rate, and from two equal channels.
    decisions = {line.split()[0]: line.split()[1] for line in proc.stdout.splitlines()}
    assert decisions[str(stereo)] == decisions[str(good)] == decisions[str(rate44)]


def test_inference_refuses_a_model_with_nan_output(tmp_path):
    from pyscripts.infer import recognise_emotion as infer
    wav = tmp_path / "a.wav"
    write_wav(wav, 16000, speech())
    model = save_model(tmp_path / "final.pt", num_targets=5, nan=True)
    with pytest.raises(DataError, match=rf"{wav}: log-posteriors of {model}: .* NaN"):
        infer(wav, model, RECIPE / "conf/fbank.conf", RECIPE / "conf/vad.conf")


# ---------------------------------------------------------------- 5. TIMIT speaker lists
def test_missing_speakers_are_listed_with_the_option_to_use():
    from pyscripts.corpora.timit import split_speakers
    spk_folder = {"fadg0": "test", "mabc0": "train"}
    with pytest.raises(DataError, match=r"dev\.list: 3 of its 4 speakers are not in the corpus: faks0 fdac1 "
                                        r"mbdg0\. .*\./run\.sh --dev-spk-list FILE --test-spk-list FILE"):
        split_speakers(spk_folder, ["faks0", "fadg0", "fdac1", "mbdg0"], [], "dev.list", "test.list")


def test_run_sh_passes_other_speaker_lists_to_timit_data_prep(tmp_path, corpus_cache, tiny_timit):
    work = link_recipe(tmp_path / "recipe")
    (work / "dev.list").write_text("mzz99\n")
    proc = run_script(["./run.sh", "--corpus", "tiny", "--skip-setup", "true", "--corpus-dir", corpus_cache,
                       "--stage", "2", "--stop-stage", "2", "--dev-spk-list", "dev.list"], cwd=work, check=False)
    assert proc.returncode != 0
    assert "dev.list: 1 of its 1 speakers are not in the corpus: mzz99" in proc.stdout + proc.stderr


# ---------------------------------------------------------------- 7. smaller
def test_unreadable_ark_error_does_not_claim_relative_paths(tmp_path):
    from pyscripts.nnet.data import load_frame_set
    write_split(tmp_path / "d", tmp_path / "t")
    (tmp_path / "d/feats.ark").write_bytes(b"garbage")
    with pytest.raises(DataError) as err:
        load_frame_set(tmp_path / "d", tmp_path / "t")
    assert "relative" not in str(err.value) and "missing or damaged" in str(err.value)


# ---------------------------------------------------------------- 8. stale models
@pytest.fixture
def split(tmp_path):
    write_split(tmp_path / "tr", tmp_path / "tr_tg", seed=1, missing=("utt005",))
    write_split(tmp_path / "dv", tmp_path / "dv_tg", num_utts=3, seed=2)
    return tmp_path


def train_here(root, cfg, force=False):
    return nnet_train.train(cfg, root / "tr", root / "dv", root / "tr_tg", root / "dv_tg", root / "exp", "cpu",
                            force)


def test_a_model_is_retrained_when_what_it_was_trained_on_changes(split, caplog):
    caplog.set_level(logging.INFO)
    cfg = nnet_train.load_config(RECIPE / "conf/convnet_asr.yaml", NARROW + ["training.max_epochs=1"])
    final = train_here(split, cfg)
    stamp = nnet_train.read_stamp(split / "exp/final.stamp")
    assert "train_feats" in stamp and "config" in stamp and stamp["init_from"] == "none"
    mtime = final.stat().st_mtime_ns
    # The same features written again (a redone stage 4) leave the model up to date.
    feats = dict(kaldiio.load_scp(str(split / "tr/feats.scp")))
    with kaldiio.WriteHelper(f"ark,scp:{split}/tr/feats.ark,{split}/tr/feats.scp") as out:
        for utt, m in feats.items():
            out(utt, m)
    caplog.clear()
    train_here(split, cfg)
    assert final.stat().st_mtime_ns == mtime and "is up to date" in caplog.text
    # New features and alignments for the same utterances: trained again, and it says why.
    write_split(split / "tr", split / "tr_tg", seed=9, missing=("utt005",))
    caplog.clear()
    train_here(split, cfg)
    assert "changed since it was trained: train_feats, train_targets; training it again" in caplog.text
    assert final.stat().st_mtime_ns != mtime
    mtime = final.stat().st_mtime_ns
    train_here(split, cfg, force=True)
    assert final.stat().st_mtime_ns != mtime


def test_train_convnet_script_checks_the_stamp_reports_dropped_utterances_and_keeps_resumed_logs(split):
    exp = split / "exp"

    def script(*opts, overrides=" ".join(NARROW)):
        return subprocess.run(["steps/train_convnet.sh", "--cmd", "run.pl", "--num-threads", "1", "--device", "cpu",
                               "--overrides", overrides, *opts, split / "tr", split / "dv", split / "tr_tg",
                               split / "dv_tg", exp], cwd=RECIPE, capture_output=True, text=True)
    # A killed training (after epoch 1) with a log of its own...
    cfg = nnet_train.load_config(RECIPE / "conf/convnet_asr.yaml", NARROW)
    evaluate = nnet_train.evaluate
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(nnet_train, "evaluate", lambda *a, **k: evaluate(*a, **k) if not (exp / "checkpoint.pt").exists()
                   else (_ for _ in ()).throw(KeyboardInterrupt))
        with pytest.raises(KeyboardInterrupt):
            train_here(split, cfg)
    (exp / "log").mkdir()
    (exp / "log/train.log").write_text("THE FIRST RUN\n")
    # ... resumes, keeping the first run's log in front, and the dropped utterance is on the console.
    first = script()
    assert first.returncode == 0, first.stdout + first.stderr
    log = (exp / "log/train.log").read_text()
    assert log.startswith("THE FIRST RUN\n") and "resuming from" in log and "done after 2 epochs" in log
    assert "1 of 8 utterances have no targets" in first.stderr
    second = script()
    assert second.returncode == 0 and "final.pt is up to date, skipping" in second.stdout
    third = script(overrides=" ".join(NARROW + ["optimizer.lr=0.01"]))
    assert third.returncode == 0, third.stdout + third.stderr
    assert "out of date (changed since it was trained: config): training it again" in third.stdout


# ---------------------------------------------------------------- 9. quiet corruption (issue 25)
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_nan_or_inf_samples_in_a_float_wav_name_the_file(tmp_path, value):
    samples = speech(0.01).astype("<f4") / 32768
    samples[5] = value  # numpy would cast NaN to 0 and inf to 32767, with only a RuntimeWarning
    path = tmp_path / "float.wav"
    path.write_bytes(riff(struct.pack("<HHIIHH", 3, 1, 16000, 64000, 4, 32), samples.tobytes()))
    with pytest.raises(DataError, match=rf"{path}: 1 NaN or inf samples \(the first at sample 5\) in this float "
                                        r"wav; it is damaged"):
        read_audio(path)


def feats_dir(root, name="d", seed=0, num_targets=3):
    """A data dir as steps/make_fbank.sh leaves it: feats.scp, utt2num_frames, utt2spk/spk2utt and the
    conf its features were made with (conf/fbank.conf)."""
    data = root / name
    write_split(data, root / f"{name}_tg", seed=seed, num_targets=num_targets)
    utts = [line.split()[0] for line in (data / "feats.scp").read_text().splitlines()]
    frames = {u: len(m) for u, m in kaldiio.load_scp(str(data / "feats.scp")).items()}
    (data / "utt2num_frames").write_text("".join(f"{u} {frames[u]}\n" for u in utts))
    (data / "utt2spk").write_text("".join(f"{u} spk\n" for u in utts))
    (data / "spk2utt").write_text(f"spk {' '.join(utts)}\n")
    (data / "conf").mkdir()
    (data / "conf/fbank.conf").write_text((RECIPE / "conf/fbank.conf").read_text())
    return data


def test_a_truncated_feats_ark_is_no_finished_stage_4(tmp_path, capsys):
    from pyscripts import fingerprint
    from pyscripts.kaldi.datadir import validate_data_dir
    data = feats_dir(tmp_path)
    check = ["check", str(tmp_path / "stage4"), "--input", str(RECIPE / "conf/fbank.conf"),
             "--output", str(data / "feats.scp")]
    assert fingerprint.main(check) == fingerprint.OUT_OF_DATE and fingerprint.main(["commit", check[1]]) == 0
    assert fingerprint.main(check) == 0
    ark = data / "feats.ark"
    ark.write_bytes(ark.read_bytes()[:-100])  # a full disk or a killed job
    capsys.readouterr()
    assert fingerprint.main(check) == fingerprint.OUT_OF_DATE
    assert re.search(rf"out of date \({data}/feats\.scp: utterance utt007: its \d+-byte entry at byte \d+ of "
                     rf"{ark} is cut off \(the file has \d+ bytes\): the archive is truncated", capsys.readouterr().out)
    # steps/make_feats.sh ends with this check: such features never count as made
    with pytest.raises(DataError, match=r"utt007: .* the archive is truncated .* make the features again"):
        validate_data_dir(data, need_feats=True)


def test_a_failing_retraining_keeps_the_last_good_model(split):
    cfg = nnet_train.load_config(RECIPE / "conf/convnet_asr.yaml", NARROW + ["training.max_epochs=1"])
    exp = split / "exp"
    train_here(split, cfg)
    kept = {name: (exp / name).read_bytes() for name in ("final.pt", "final.stamp", "prior_counts", "train_summary")}
    ark = split / "tr/feats.ark"
    ark.write_bytes(ark.read_bytes()[:-100])
    with pytest.raises(DataError, match=r"tr/feats\.scp: cannot read utterance utt007 .*missing or damaged"):
        train_here(split, cfg)
    assert {name: (exp / name).read_bytes() for name in kept} == kept
    assert not [p.name for p in exp.iterdir() if p.name in ("checkpoint.pt", "best.pt") or p.suffix == ".tmp"]
    # ... and the kept model claims only the inputs it was trained on, not the damaged ones
    stamp = nnet_train.input_stamp(cfg, split / "tr", split / "dv", split / "tr_tg", split / "dv_tg")
    assert nnet_train.stamp_changes(nnet_train.read_stamp(exp / "final.stamp"), stamp) == \
        "changed since it was trained: train_feats"


def test_a_killed_retraining_keeps_the_last_good_model_and_resumes(split, caplog):
    caplog.set_level(logging.INFO)
    cfg = nnet_train.load_config(RECIPE / "conf/convnet_asr.yaml", NARROW)
    exp = split / "exp"
    train_here(split, cfg)
    old = (exp / "final.pt").read_bytes()
    cfg["optimizer"]["lr"] = 0.01
    evaluate = nnet_train.evaluate
    with pytest.MonkeyPatch.context() as mp:  # killed after epoch 1 of the new training
        mp.setattr(nnet_train, "evaluate", lambda *a, **k: evaluate(*a, **k) if not (exp / "checkpoint.pt").exists()
                   else (_ for _ in ()).throw(KeyboardInterrupt))
        with pytest.raises(KeyboardInterrupt):
            train_here(split, cfg)
    assert (exp / "final.pt").read_bytes() == old and (exp / "checkpoint.pt").is_file()
    caplog.clear()
    train_here(split, cfg)
    assert "resuming from" in caplog.text and (exp / "final.pt").read_bytes() != old
    assert not (exp / "checkpoint.pt").exists()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_disk_full_while_saving_names_the_file_and_leaves_no_tmp(tmp_path):
    path = tmp_path / "checkpoint.pt"
    torch.save({"epoch": 1}, path)
    (tmp_path / "checkpoint.pt.tmp").symlink_to("/dev/full")  # every write: ENOSPC, as on a full disk
    with pytest.raises(DataError, match=rf"{path}: cannot write it \(disk full: No space left on device\); free "
                                        r"space on its disk and run again"):
        nnet_train._save({"epoch": 2, "weights": torch.zeros(10000)}, path)
    assert not (tmp_path / "checkpoint.pt.tmp").is_symlink()
    assert torch.load(path, weights_only=True) == {"epoch": 1}


@pytest.fixture
def trained_ser(tmp_path):
    """A model trained on data dirs that record their features' options (conf/fbank.conf), and a wav."""
    for name, seed in (("tr", 1), ("dv", 2)):
        feats_dir(tmp_path, name, seed, num_targets=5)
    cfg = nnet_train.load_config(RECIPE / "conf/convnet_ser.yaml", NARROW + ["training.max_epochs=1"])
    model = nnet_train.train(cfg, tmp_path / "tr", tmp_path / "dv", tmp_path / "tr_tg", tmp_path / "dv_tg",
                             tmp_path / "exp", "cpu")
    write_wav(tmp_path / "a.wav", 16000, speech())
    return model, tmp_path


@pytest.mark.parametrize("option, message", [("--num-mel-bins=23", "--num-mel-bins=40 vs 23"),
                                             ("--window-type=povey", "--window-type=hamming vs povey")])
def test_inference_refuses_features_other_than_the_models(trained_ser, option, message):
    from pyscripts.infer import recognise_emotion
    model, root = trained_ser
    assert torch.load(model, weights_only=True)["features"]["options"]["num-mel-bins"] == "40"
    other = root / "other.conf"
    other.write_text((RECIPE / "conf/fbank.conf").read_text() + option + "\n")
    with pytest.raises(DataError, match=rf"{other}: not the features {model} was trained on \({message}: the "
                                        rf"training's value first, from {root}/tr/conf/fbank\.conf\); give "
                                        r"--fbank-config a conf with the options it was trained with"):
        recognise_emotion(root / "a.wav", model, other, RECIPE / "conf/vad.conf")
    assert recognise_emotion(root / "a.wav", model, RECIPE / "conf/fbank.conf", RECIPE / "conf/vad.conf")[0]


def test_decoding_refuses_a_data_dir_of_other_features_and_old_models_still_run(trained_ser, caplog):
    from pyscripts.asr.hybrid import ForwardOptions, compute_loglikes
    from pyscripts.infer import recognise_emotion
    model, root = trained_ser
    conf = root / "dv/conf/fbank.conf"
    conf.write_text(conf.read_text().replace("hamming", "povey"))
    with pytest.raises(DataError, match=rf"{conf}: not the features {model} was trained on \(--window-type="
                                        r"hamming vs povey: .*make this data dir's features with the options"):
        compute_loglikes(model, root / "dv/feats.scp", root / "dec/loglikes.1.ark", ForwardOptions(device="cpu"))
    old = save_model(root / "old.pt", num_targets=5)  # trained before the options were recorded
    assert recognise_emotion(root / "a.wav", old, RECIPE / "conf/fbank.conf", RECIPE / "conf/vad.conf")[0]
    assert f"{old} does not record the feature options it was trained on" in caplog.text
