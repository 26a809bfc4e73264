#!/usr/bin/env bash
# Kaldi's steps/make_fbank.sh: steps/make_feats.sh with --feat-type fbank (same options and arguments).
exec "$(dirname "$0")/make_feats.sh" --feat-type fbank "$@"
