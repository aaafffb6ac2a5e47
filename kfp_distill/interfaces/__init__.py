"""The interfaces, the top layer: the `kfp-distill` command line, `serve`, `submit`, `publish`, `compile` and the
demo task. They use the pipelines, the components and `kfp_distill._implementation`; nothing below imports them."""
