"""Speech emotion recognition on IEMOCAP with the shared ConvNet: frame labels (emotion + VAD silence),
cross-validation folds, utterance decisions, E/UE metrics and inference."""
