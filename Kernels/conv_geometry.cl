// The window geometry of a convolution, shared by conv2d.cl, conv2d_depthwise.cl and
// conv2d_direct.cl (the host prepends this file). With CONV_KH, CONV_KW, CONV_SH, CONV_SW,
// CONV_PH, CONV_PW, CONV_DH, CONV_DW defined at build time, index arithmetic divides by constants
// and window loops unroll; otherwise the kernels' arguments kh_, kw_, ... are used.
#ifdef CONV_KH
#define KH CONV_KH
#define KW CONV_KW
#define SH CONV_SH
#define SW CONV_SW
#define PH CONV_PH
#define PW CONV_PW
#define DH CONV_DH
#define DW CONV_DW
#else
#define KH kh_
#define KW kw_
#define SH sh_
#define SW sw_
#define PH ph_
#define PW pw_
#define DH dh_
#define DW dw_
#endif

// An activation fused into a convolution's store (ACT_RELU or ACT_RELU6 defined; none by
// default), computed as activation.cl computes it: a conv, its folded batchnorm and the ReLU
// after them become one pass over the output. A NaN stays NaN (fmax and clamp would drop it).
#if defined(ACT_RELU)
#define FUSED_ACT(v) ((v) < 0.0f ? 0.0f : (v))
#elif defined(ACT_RELU6)
#define FUSED_ACT(v) ((v) < 0.0f ? 0.0f : (v) > 6.0f ? 6.0f : (v))
#else
#define FUSED_ACT(v) (v)
#endif
