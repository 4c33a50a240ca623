"""Stage 5: compile an ArchGraph into a torch.nn.Module."""
