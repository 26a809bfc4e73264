"""The embedded GMM-HMM backend (kaldi-hmm-gmm, kaldifst): model files, training graphs, monophone
training, forced alignment, HCLG construction and decoding.

kaldi_hmm_gmm must be imported before kaldifst, kaldi_decoder and kaldilm (see the notes on the
Kaldi wheels); the modules of this package import it first.
"""
