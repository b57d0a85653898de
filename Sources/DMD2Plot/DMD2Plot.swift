// DMD2Plot: line plots (losses, brightness vs iteration, power spectra) rendered by the project
// itself to SVG and PNG, for the docs and the `eval` command.
