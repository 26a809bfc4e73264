"""Transfer of ConvNet features between ASR and SER: sweep plans, result tables, figures, CKA."""
