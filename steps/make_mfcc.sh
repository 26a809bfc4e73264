#!/usr/bin/env bash
# Kaldi's steps/make_mfcc.sh: steps/make_feats.sh with --feat-type mfcc (same options and arguments).
exec "$(dirname "$0")/make_feats.sh" --feat-type mfcc "$@"
