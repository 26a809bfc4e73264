"""pyscripts/infer.py: a batch of files of every kind (too short, silent, FLAC, MP3, unreadable, scp with
a pipe) goes on and says what each is; JSON and CTM outputs parsed and checked; phone times from the
decoder's best path; speech segments of long files."""
import json

import numpy as np
import pytest
import torch

from pyscripts.errors import DataError
from pyscripts.infer import PhoneDecoder, main, phone_spans, speech_segments
from pyscripts.kaldi.audio import write_wav
from pyscripts.kaldi.model import load_transition_model
from pyscripts.nnet.config import load_config
from pyscripts.nnet.model import build_model, package_model

from conftest import RECIPE
from test_hybrid_decode import graph, synthetic_loglikes  # noqa: F401  (graph: a module fixture)
from test_infer_audio import voice

pytestmark = pytest.mark.usefixtures("one_torch_thread")
NARROW = ["model.conv1_channels=4", "model.conv2_channels=8", "model.fc_dim=16"]
PHONE_MAP = RECIPE / "conf/phones.60-48-39.map"


def save_model(path, num_targets):
    """A small untrained ConvNet package (what inference loads), prior counts all one."""
    cfg = load_config(RECIPE / "conf/convnet_asr.yaml", NARROW)
    torch.manual_seed(0)
    model = build_model(num_targets, 40, cfg["model"]).eval()
    torch.save(package_model(model, cfg, torch.ones(num_targets, dtype=torch.long), 1, {}, []), path)
    return path


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """{kind: path} of one file of each kind, and the scp list of a pipe."""
    root = tmp_path_factory.mktemp("batch")
    files = {k: root / f"{k}.wav" for k in ("speech", "short", "silent", "bad")}
    write_wav(files["speech"], 16000, voice(1.5))
    write_wav(files["short"], 16000, voice(0.02))
    write_wav(files["silent"], 16000, np.zeros(16000, np.int16))
    files["bad"].write_text("not audio")
    soundfile = pytest.importorskip("soundfile")
    files["flac"], files["mp3"] = root / "speech.flac", root / "speech.mp3"
    soundfile.write(files["flac"], voice(1.5, 44100), 44100, format="FLAC")
    soundfile.write(files["mp3"], voice(1.5, 22050), 22050, format="MP3")
    files["scp"] = root / "wav.scp"
    files["scp"].write_text(f"piped cat {files['speech']} |\n")
    return files


def run(capsys, argv):
    """(exit status, stdout, stderr) of the command line."""
    try:
        main(argv)
        code = 0
    except SystemExit as err:
        code = err.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_speech_segments_bridge_short_gaps_and_drop_clicks():
    speech = np.zeros(300, bool)
    speech[10:60] = speech[80:120] = True      # a 20-frame gap: bridged
    speech[200:210] = True                     # 10 frames, alone: a click
    speech[250:290] = True
    assert speech_segments(speech, max_gap=30, min_frames=20) == [(10, 120), (250, 290)]
    assert speech_segments(np.zeros(5, bool)) == []


def test_emotion_batch_goes_on_and_says_what_each_file_is(tmp_path, capsys, batch):
    model = save_model(tmp_path / "ser.pt", 5)
    inputs = [str(batch[k]) for k in ("short", "silent", "bad", "flac", "mp3", "speech")]
    code, out, err = run(capsys, ["emotion", "--model", str(model), *inputs, f"scp:{batch['scp']}"])
    assert code == 1 and f"1 of 7 files failed (see above): {batch['bad']}" in err
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == [*inputs[:2], *inputs[3:], "piped"]
    assert lines[0] == (f"{batch['short']} too-short: too short: 320 samples (0.020 s) at 16000 Hz, shorter than "
                        "one 0.025 s analysis window (400 samples)")
    assert lines[1].startswith(f"{batch['silent']} no-speech: no speech frame in 98 frames")
    for line in lines[2:]:
        fields = line.split()
        assert fields[1] in ("ang", "hap", "neu", "sad") and fields[-2].startswith("speech=")
    # The same speech through a pipe and from the file: the same line but for the name.
    assert lines[-1].split()[1:] == lines[-2].split()[1:]


def test_emotion_json_gives_segments_of_long_files(tmp_path, capsys, batch):
    model = save_model(tmp_path / "ser.pt", 5)
    code, out, _ = run(capsys, ["emotion", "--model", str(model), "--format", "json", "--long-file", "1",
                                str(batch["speech"]), str(batch["silent"])])
    assert code == 0
    speech, silent = (json.loads(line) for line in out.splitlines())
    assert silent["status"] == "no-speech" and "emotion" not in silent and silent["frames"] == 98
    assert speech["status"] == "ok" and speech["duration"] == 1.5 and speech["frames"] == 148
    assert sum(speech["emotion"]["posteriors"].values()) == pytest.approx(1.0, abs=1e-5)
    assert speech["segments"] and all(0 <= s["start"] < s["start"] + s["duration"] <= 1.5
                                      for s in speech["segments"])
    assert "phones" not in speech


def test_emotion_refuses_ctm(tmp_path, capsys):
    code, _, err = run(capsys, ["emotion", "--model", "m.pt", "--format", "ctm", "a.wav"])
    assert code == 2 and "--format ctm holds phones" in err


def test_phone_times_come_from_the_best_path(graph):  # noqa: F811
    seq = ["sil", "aa", "b", "iy", "k", "s", "aa", "sil"]
    loglikes, _ = synthetic_loglikes(graph, seq, np.random.RandomState(0), noise=1.0)
    decoder = PhoneDecoder(graph["graph"], np.ones(graph["num_pdfs"]), graph["mdl"], PHONE_MAP)
    phones, spans = decoder.decode("utt", loglikes)
    assert phones == [p for p, _, _ in spans] == seq   # these phones are their own 39-set names
    assert spans == [(p, 9 * i, 9) for i, p in enumerate(seq)]   # 3 states x 3 frames each


def test_a_partial_path_ends_in_its_last_phone(graph):  # noqa: F811
    tm = load_transition_model(graph["mdl"])
    loglikes, _ = synthetic_loglikes(graph, ["sil", "aa", "b"], np.random.RandomState(0))
    decoder = PhoneDecoder(graph["graph"], np.ones(graph["num_pdfs"]), graph["mdl"], PHONE_MAP)
    decoder.decode("utt", loglikes)
    _, best = decoder.decoder.decoder.get_best_path(use_final_probs=True)
    import kaldifst
    tids = np.asarray(kaldifst.get_linear_symbol_sequence(best)[1])
    whole = phone_spans(tm, tids)
    cut = phone_spans(tm, tids[:-4], complete=False)     # stops inside the third phone
    assert cut[:-1] == whole[:-1] and cut[-1] == (whole[-1][0], whole[-1][1], whole[-1][2] - 4)
    with pytest.raises(DataError, match="does not end in its final state"):
        phone_spans(tm, tids[:-4])


@pytest.mark.parametrize("fmt", ["json", "ctm"])
def test_hybrid_json_and_ctm_times_cover_the_file(tmp_path, capsys, batch, graph, fmt):  # noqa: F811
    asr, ser = save_model(tmp_path / "asr.pt", graph["num_pdfs"]), save_model(tmp_path / "ser.pt", 5)
    inputs = [str(batch[k]) for k in ("flac", "short", "bad", "speech")]
    code, out, err = run(capsys, ["hybrid", "--asr-model", str(asr), "--ser-model", str(ser), "--graph-dir",
                                  str(graph["graph"]), "--trans-mdl", str(graph["mdl"]), "--phone-map",
                                  str(PHONE_MAP), "--decode-config", str(RECIPE / "conf/decode.conf"),
                                  "--format", fmt, *inputs])
    assert code == 1 and f"1 of 4 files failed (see above): {batch['bad']}" in err
    frames = {inputs[0]: 148, inputs[3]: 148}
    if fmt == "json":
        records = [json.loads(line) for line in out.splitlines()]
        assert [r["file"] for r in records] == [inputs[0], inputs[1], inputs[3]]
        assert records[1]["status"] == "too-short" and "phones" not in records[1]
        spans = {r["file"]: [(p["phone"], p["start"], p["duration"]) for p in r["phones"]]
                 for r in records if r["status"] == "ok"}
    else:
        lines = out.splitlines()
        assert f";; {inputs[1]} too-short: too short: 320 samples" in out
        spans = {}
        for line in (line for line in lines if not line.startswith(";;")):
            name, channel, start, duration, phone = line.split()
            assert channel == "1"
            spans.setdefault(name, []).append((phone, float(start), float(duration)))
    assert set(spans) == set(frames)
    for name, segs in spans.items():
        starts = [s for _, s, _ in segs]
        assert starts[0] == 0 and all(b > a for a, b in zip(starts, starts[1:]))
        assert all(s + d == pytest.approx(n) for (_, s, d), n in zip(segs, starts[1:]))   # contiguous
        assert sum(d for _, _, d in segs) == pytest.approx(frames[name] * 0.01)


def test_decode_settings_come_from_the_options_the_dev_scoring_or_the_conf(tmp_path):
    from pyscripts.asr.decode_conf import read_decode_conf
    from pyscripts.asr.result import PER_KEYS, REQUIRED_KEYS, write_result
    from pyscripts.infer import decode_settings
    conf_path = tmp_path / "decode.conf"
    conf_path.write_text("--acwt=0.2\n--beam=11\n")
    conf = read_decode_conf(conf_path)
    tune = tmp_path / "decode_dev"
    assert decode_settings(None, None, conf_path, tune) == (0.2, 11.0, conf.lattice_beam, str(conf_path))
    record = {key: None for key in REQUIRED_KEYS}
    record.update(setting="4_0.0", lmwt=4, acwt=0.25, wip=0.0, per={key: 0 for key in PER_KEYS})
    path = write_result(tune, record)
    assert decode_settings(None, None, conf_path, tune)[::3] == (0.25, str(path))
    assert decode_settings(0.5, 9.0, conf_path, tune)[:2] == (0.5, 9.0)
