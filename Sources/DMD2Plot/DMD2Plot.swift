// DMD2Plot: line plots (losses, brightness vs iteration, power spectra) rendered by the project
// itself to SVG and PNG, for the docs and the `eval` command (docs/METRICS.md, "Plots").
//
//   LinePlot.swift     series, axes and ticks (linear or log), the layout both renderers share
//   SVG.swift          the SVG text rendering
//   Raster.swift       the PNG rendering: anti-aliased lines into an RGB Image8
//   BitmapFont.swift   the 5×7 font the PNG's labels are drawn with
