"""The keypoint stream without ROS: what the graph's nodes do, as plain Python objects.

    sources    frames of a clip, an image folder or a camera (FrameSource, DeviceSource, Frames)
    sender     capture stamps -> frame indices, the transmit gate, detection (KeypointSender)
    meters     rates, index gaps and latencies of a stream (StreamStats)
    rendering  keypoints -> rendered and overlay frames (StreamRenderer, overlay_frame)
    receiving  the forecaster's input checks: one model_id per stream, corrected values counted
    message    the Keypoint60 the graph sends, its definition and serialised size (rosbags)
    ending     when a detector in another process than the camera ends its stream (ClipEnd)
    wire       the compact network packet: quantised values, small ids (not yet used by the nodes)
    predictive predictive transmission: the sender mirrors the receiver's forecaster and sends
               only what it would get wrong (simulated by `kp-motion bandwidth`; not yet in the
               nodes)

The ROS nodes (kp_motion/ros/) only convert messages and make one call into these per message;
anyone can drive the same logic from their own transport, and test it without rclpy.
"""
