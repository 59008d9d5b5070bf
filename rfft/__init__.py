"""RFFT and generation: product placement, the ControlNet inpainting pipeline, Recurrent
Generation, and fine-tuning the ControlNet with RFNet's feedback (RFFT, with Consistent
Condition regularization). Arrives with the generation and RFFT issues; see
docs/ARCHITECTURE.md."""
