# shellcheck shell=bash
# The recipe's layout: where run.sh's stages leave what later steps read. Sourced by run.sh and, as their
# option defaults, by the scripts that also run on their own (local/run_transfer.sh, run_joint.sh,
# make_report.sh, gpu_check.sh, gpu_bundle.sh, gpu_workdir.sh): the one home of these paths.
# shellcheck disable=SC2034  # used by the scripts that source it
{
timit_data=data/timit                          # stages 2, 4: TIMIT train/dev/test data dirs with fbank features
asr_cmvn_stats=data/timit/train/cmvn_global.stats  # stage 4: global CMVN stats of TIMIT train (the ASR input)
graph_dir=exp/mono/graph                       # stage 8: HCLG of the ASR decoding (its ../final.mdl maps
                                               # transition-ids to pdfs)
asr_train_targets=exp/mono_ali/targets         # stage 7: frame targets (targets.scp, num_targets; pdf ids of
asr_dev_targets=exp/mono_ali_dev/targets       # ../final.mdl) of TIMIT train, dev and test
asr_test_targets=exp/mono_ali_test/targets
ser_data=data/iemocap                          # stages 3, 4, 11: IEMOCAP all/ and folds/foldK/{train,valid,test}
ser_targets=exp/ser/targets                    # stage 11: SER frame targets, foldK/{train,valid,test}
}
