"""End-to-end smoke test: ./run.sh --corpus tiny runs every stage that exists, in a fresh directory."""
import kaldiio

from conftest import run_script
from pyscripts.datadir import read_table, validate_data_dir


def test_run_sh_tiny_end_to_end(recipe_dir):
    proc = run_script(["./run.sh", "--corpus", "tiny", "--nj", "2", "--skip-setup", "true"],
                      cwd=recipe_dir)
    for stage in range(1, 13):
        assert f"stage {stage}:" in proc.stdout
    for name in ("train", "dev", "test"):
        d = recipe_dir / "data/timit" / name
        validate_data_dir(d, need_feats=True, need_text=True)
        feats = kaldiio.load_scp(str(d / "feats.scp"))
        assert all(m.shape[1] == 40 for m in feats.values())
        mfcc = read_table(recipe_dir / "data/timit_mfcc" / name / "utt2num_frames")
        assert mfcc == read_table(d / "utt2num_frames")   # GMM alignments must fit the fbank frames
    validate_data_dir(recipe_dir / "data/iemocap/all", need_feats=True)
    assert (recipe_dir / "data/timit/train/cmvn_global.stats").is_file()
    assert (recipe_dir / "data/lang/L.fst").is_file() and (recipe_dir / "data/lang_test_bg/G.fst").is_file()
    targets = kaldiio.load_scp(str(recipe_dir / "exp/mono_ali/targets/targets.scp"))
    frames = read_table(recipe_dir / "data/timit/train/utt2num_frames")
    assert targets and all(len(v) == int(frames[u]) for u, v in targets.items())
    assert (recipe_dir / "exp/mono/graph/HCLG.fst").is_file()
    assert "%PER" in (recipe_dir / "exp/mono/decode_test/scoring/best_wer").read_text()
    results = (recipe_dir / "exp/RESULTS.md").read_text()
    assert "exp/convnet_asr" in results and "exp/mono" in results
    assert (recipe_dir / "exp/convnet_asr/decode_test/scoring/best_wer").is_file()
    assert len(list((recipe_dir / "exp/ser").glob("fold*/final.pt"))) == 8
    assert "| Baseline |" in (recipe_dir / "exp/ser/results.md").read_text()
    report = (recipe_dir / "exp/report/README.md").read_text()
    assert "No. Constant Layers" in report
    for png in ("cka.png", "filters.png", "transfer_asr2ser.png", "transfer_ser2asr.png"):
        assert (recipe_dir / "exp/report" / png).stat().st_size > 1000
    # A second run with the wrong corpus is refused rather than mixing results.
    wrong = run_script(["./run.sh", "--corpus", "demo", "--skip-setup", "true", "--stage", "4"],
                       cwd=recipe_dir, check=False)
    assert wrong.returncode == 1 and "hold results of --corpus tiny" in wrong.stderr
