"""What a user and the nodes can set in a graph, as pure data: no ROS.

    parameters  the node parameter table (type, meaning, range or choices of each parameter a
                node declares) and its defaults from config/nodes.yaml
    options     the graph option table from which `kp-motion graph`'s flags, the launch
                arguments and the nodes' parameter values are generated

The ROS adapters (kp_motion/ros/) read these tables, and so does ROS-free code (the stream's
message defaults, the CLI). Nothing in this package may import rclpy or other ROS modules, so
that "only kp_motion/ros/ is ROS" stays checkable by folder.
"""
