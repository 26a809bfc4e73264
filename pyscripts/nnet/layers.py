"""The ConvNet's layer plan, without torch: the transfer plan (a shell's field query) needs it, not the network."""

NUM_LAYERS = 6           # layer 6 is the task-specific output layer
TRANSFERABLE_LAYERS = 5  # layers 1..5 can be copied between tasks
MIN_FROZEN = 2           # both convolutions frozen: below that the trunk cache saves little
