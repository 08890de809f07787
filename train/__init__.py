"""Two-stage colorization training (draft, refinement) fed by WebDataset shards: a library.

- `loader`: streams `pipe shard` output into batches (node and worker splitting, shuffling, epochs).
- `networks/`: the generators (U-Nets, ResNeXt and attention U-Nets), discriminators, and the frozen
  feature networks (VGG16, GoogLeNet, the FID Inception) loaded from their published files.
- `recipes`: each paper's stages as data, every value with its source; `settings`: a stage resolved
  with a preset (`paper`, `quick`) and the user's options (what `pipe train --show-config` prints and
  the README's recipe table is rendered from); `schedule`: learning-rate schedules and epochs;
  `augment`: seeded per-sample crops and flips; `inputs`: generator inputs and resizing (hints
  max-pooled, never averaged); `trainer`: the one training loop; `losses`, `ema`, `precision`,
  `checkpoint` (atomic whole-state files).
- `inference`, `colorize`: trained generators back from checkpoints, and colouring sketches with them.
- `metrics/`: FID, KID, CIELAB, hint adherence, containment, PSNR and SSIM.

It uses `synth`, `extractors` and `manifests`, never `pipeline`: its errors are exceptions
(`train.errors.TrainingError` for what a user can fix) and it prints nothing.
"""
