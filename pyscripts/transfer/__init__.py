"""Transfer of ConvNet features between ASR and SER (issue 7): sweep plans, result tables, figures, CKA."""
