"""The training data as sd-scripts reads it: layout, dataset TOML, images, captions, buckets, steps, findings."""
