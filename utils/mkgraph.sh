#!/usr/bin/env bash
# Decoding graph HCLG (Kaldi's utils/mkgraph.sh): GRAPH_DIR/{HCLG.fst,words.txt,phones.txt,phones/,
# disambig_tid.int,num_pdfs}. H has transition-ids (--transition-scale) and self-loops
# (--self-loop-scale), C the model's context width (from the tree), L_disambig and G from LANG_DIR.
# Embedded backend: kaldifst + kaldi-hmm-gmm (monophone models); with KALDI_ROOT: fsttablecompose,
# fstdeterminizestar, fstcomposecontext, make-h-transducer, fstrmsymbols, add-self-loops.
set -euo pipefail
transition_scale=1.0
self_loop_scale=0.1
help_message="Usage: $0 [options] LANG_DIR MODEL_DIR GRAPH_DIR
  e.g. $0 data/lang_test_bg exp/mono exp/mono/graph
Options:
  --transition-scale S  (default $transition_scale)
  --self-loop-scale S   (default $self_loop_scale)"
. ./path.sh
. utils/parse_options.sh
if [[ $# -ne 3 ]]; then echo -e "$help_message" >&2; exit 1; fi
lang=$1; model_dir=$2; dir=$3
for f in "$lang/L_disambig.fst" "$lang/G.fst" "$lang/phones/disambig.int" "$model_dir/final.mdl" "$model_dir/tree"; do
  [[ -f $f ]] || die "$f not found"
done
mkdir -p "$dir/log"
if [[ -z ${KALDI_ROOT:-} ]]; then
  python3 -m pyscripts.gmm.mkgraph --transition-scale "$transition_scale" \
    --self-loop-scale "$self_loop_scale" "$lang" "$model_dir" "$dir" 2> "$dir/log/mkgraph.log" || {
    cat "$dir/log/mkgraph.log" >&2; exit 1; }
  hclg=$(grep -o 'HCLG: .*arcs' "$dir/log/mkgraph.log")
  log "$hclg"
else
  tmp=$dir/tmp; mkdir -p "$tmp"
  N=$(tree-info "$model_dir/tree" | awk '/context-width/{print $2}')
  P=$(tree-info "$model_dir/tree" | awk '/central-position/{print $2}')
  fsttablecompose "$lang/L_disambig.fst" "$lang/G.fst" | fstdeterminizestar --use-log=true | \
    fstminimizeencoded | fstpushspecial | fstarcsort --sort_type=ilabel > "$tmp/LG.fst"
  fstcomposecontext --context-size="$N" --central-position="$P" \
    --read-disambig-syms="$lang/phones/disambig.int" --write-disambig-syms="$tmp/disambig_ilabels.int" \
    "$tmp/ilabels" "$tmp/LG.fst" | fstarcsort --sort_type=ilabel > "$tmp/CLG.fst"
  make-h-transducer --disambig-syms-out="$dir/disambig_tid.int" --transition-scale="$transition_scale" \
    "$tmp/ilabels" "$model_dir/tree" "$model_dir/final.mdl" > "$tmp/Ha.fst"
  fsttablecompose "$tmp/Ha.fst" "$tmp/CLG.fst" | fstdeterminizestar --use-log=true | \
    fstrmsymbols "$dir/disambig_tid.int" | fstrmepslocal | fstminimizeencoded > "$tmp/HCLGa.fst"
  add-self-loops --self-loop-scale="$self_loop_scale" --reorder=true "$model_dir/final.mdl" \
    "$tmp/HCLGa.fst" > "$dir/HCLG.fst"
  cp "$lang/words.txt" "$lang/phones.txt" "$dir/"
  rm -rf "$dir/phones"; cp -r "$lang/phones" "$dir/"
  am-info --print-args=false "$model_dir/final.mdl" | awk '/pdfs/{print $NF}' > "$dir/num_pdfs"
  log "HCLG: $(fstinfo "$dir/HCLG.fst" | awk '/# of states/{s=$NF} /# of arcs/{a=$NF} END{print s " states, " a " arcs"}')"
fi
