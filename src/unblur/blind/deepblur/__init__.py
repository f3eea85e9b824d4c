"""Deep-blur (Debarnot & Weiss, Biological Imaging 2024): learned blind identification and deblurring.

* :mod:`.identify` -- IN, a ResNet reading the PSF parameters gamma off a blurred image;
* :mod:`.deblur` -- DN, unrolled Douglas-Rachford with learned proximal networks (Algorithm 1);
* :mod:`.psf_model` -- the parametric blur A(gamma): Zernike pupil (``unblur.psf.zernike``), eigen-PSFs
  (Model 2.1) or product-convolution over a grid of control points (Model 2.2);
* :mod:`.simulate` -- training pairs; :mod:`.train` -- ``unblur train deepblur``;
* :mod:`.api` -- :func:`deepblur` and :func:`identify_psf` with the shipped weights.
"""
