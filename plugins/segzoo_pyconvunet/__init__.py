"""PyConvU-Net (Li, Fan & Cai, BMC Bioinformatics 2021): the pyramidal convolution block and the network."""
