"""Features: steps/make_fbank.sh and make_mfcc.sh through the job runner, checked against
kaldi-native-fbank called directly, readable by kaldiio and kaldi_io; CMVN stats and deltas."""
import kaldiio
import kaldi_native_fbank as knf
import numpy as np

from conftest import run_script
from pyscripts.kaldi.audio import write_wav
from pyscripts.kaldi.datadir import read_table, utt2spk_to_spk2utt, write_table
from pyscripts.kaldi.features import accumulate_cmvn, add_deltas, apply_cmvn


def make_audio_data_dir(recipe_dir, rates=None):
    rng = np.random.default_rng(0)
    data = recipe_dir / "data/set"
    audio = {}
    utt2spk, wav_scp = {}, {}
    for i, spk in enumerate(["spka", "spka", "spkb"]):
        utt = f"{spk}_u{i}"
        n = 16000 + 1234 * i
        t = np.arange(n) / 16000
        samples = (3000 * np.sin(2 * np.pi * 220 * (1 + i) * t) + rng.normal(0, 300, n)).astype(np.int16)
        path = recipe_dir / f"{utt}.wav"
        write_wav(path, (rates or {}).get(utt, 16000), samples)
        audio[utt] = samples
        utt2spk[utt] = spk
        wav_scp[utt] = str(path)
    write_table(data / "utt2spk", utt2spk)
    write_table(data / "spk2utt", utt2spk_to_spk2utt(utt2spk))
    write_table(data / "wav.scp", wav_scp)
    return data, audio


def direct_fbank(samples):
    """The paper's fbank (conf/fbank.conf) set up by hand on kaldi-native-fbank."""
    opts = knf.FbankOptions()
    opts.frame_opts.samp_freq = 16000
    opts.frame_opts.window_type = "hamming"
    opts.frame_opts.dither = 0
    opts.mel_opts.num_bins = 40
    fb = knf.OnlineFbank(opts)
    fb.accept_waveform(16000, samples.astype(np.float32).tolist())
    fb.input_finished()
    return np.array([fb.get_frame(i) for i in range(fb.num_frames_ready)])


def test_fbank_equals_kaldi_native_fbank_and_is_readable_by_both_libraries(recipe_dir):
    import kaldi_io
    data, audio = make_audio_data_dir(recipe_dir)
    run_script(["steps/make_fbank.sh", "--nj", "2", data, recipe_dir / "exp/log", recipe_dir / "fbank"],
               cwd=recipe_dir)
    feats = kaldiio.load_scp(str(data / "feats.scp"))
    assert sorted(feats) == sorted(audio)
    num_frames = read_table(data / "utt2num_frames")
    for utt, samples in audio.items():
        expected = direct_fbank(samples)
        # 25 ms windows every 10 ms with snip-edges: 1 + (n - 400) // 160 frames.
        assert expected.shape == (1 + (len(samples) - 400) // 160, 40)
        np.testing.assert_allclose(feats[utt], expected, rtol=1e-5, atol=1e-5)
        assert int(num_frames[utt]) == len(expected)
    for line in (data / "feats.scp").read_text().splitlines():
        utt, spec = line.split(maxsplit=1)
        np.testing.assert_array_equal(kaldi_io.read_mat(spec), feats[utt])
    logs = list((recipe_dir / "exp/log").glob("make_fbank_set.*.log"))
    assert len(logs) == 2 and all("Ended (code 0)" in p.read_text() for p in logs)


def test_mfcc_and_cmvn_stats(recipe_dir):
    data, audio = make_audio_data_dir(recipe_dir)
    run_script(["steps/make_mfcc.sh", "--nj", "1", data, recipe_dir / "exp/log", recipe_dir / "mfcc"],
               cwd=recipe_dir)
    feats = kaldiio.load_scp(str(data / "feats.scp"))
    assert all(m.shape[1] == 13 for m in feats.values())
    run_script(["steps/compute_cmvn_stats.sh", data, recipe_dir / "exp/log", recipe_dir / "mfcc"],
               cwd=recipe_dir)
    cmvn = kaldiio.load_scp(str(data / "cmvn.scp"))
    assert sorted(cmvn) == ["spka", "spkb"]
    both = np.concatenate([feats["spka_u0"], feats["spka_u1"]]).astype(np.float64)
    np.testing.assert_allclose(cmvn["spka"][0, :13], both.sum(0), rtol=1e-6)
    np.testing.assert_allclose(cmvn["spka"][1, :13], (both ** 2).sum(0), rtol=1e-6)
    assert cmvn["spka"][0, 13] == len(both)
    run_script(["steps/compute_cmvn_stats.sh", "--global", "true", data], cwd=recipe_dir)
    stats = kaldiio.load_mat(str(data / "cmvn_global.stats"))
    every = np.concatenate(list(feats.values()))
    normed = apply_cmvn(every, stats, norm_vars=True)
    np.testing.assert_allclose(normed.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(normed.std(0), 1, atol=1e-3)


def test_wrong_sample_rate_names_the_utterance(recipe_dir):
    data, _ = make_audio_data_dir(recipe_dir, rates={"spkb_u2": 8000})
    proc = run_script(["steps/make_fbank.sh", "--nj", "1", data, recipe_dir / "exp/log",
                       recipe_dir / "fbank"], cwd=recipe_dir, check=False)
    assert proc.returncode != 0
    log = (recipe_dir / "exp/log/make_fbank_set.1.log").read_text()
    assert "spkb_u2 has sample rate 8000 Hz" in log
    assert not (data / "feats.scp").exists() or "spkb_u2" not in (data / "feats.scp").read_text()


def test_deltas_match_kaldi_add_deltas():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(7, 3)).astype(np.float32)
    out = add_deltas(x, order=2, window=2)
    assert out.shape == (7, 9)
    def clamp(t):
        return x[min(max(t, 0), len(x) - 1)]
    # Kaldi's delta window: (x[t+1] - x[t-1] + 2 (x[t+2] - x[t-2])) / 10; the second order is that
    # window convolved with itself, a 9-tap filter applied to the clamped input frames.
    w = {-2: -0.2, -1: -0.1, 0: 0.0, 1: 0.1, 2: 0.2}
    delta = np.array([sum(w[k] * clamp(t + k) for k in w) for t in range(7)])
    delta2 = np.array([sum(w[a] * w[b] * clamp(t + a + b) for a in w for b in w) for t in range(7)])
    np.testing.assert_allclose(out[:, 3:6], delta, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[:, 6:9], delta2, rtol=1e-5, atol=1e-6)


def test_cmvn_stats_layout():
    stats = accumulate_cmvn([np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[5.0, 6.0]])])
    np.testing.assert_array_equal(stats, [[9, 12, 3], [35, 56, 0]])
