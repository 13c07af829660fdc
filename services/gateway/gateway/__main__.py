from .main import main

# Guarded: worker processes (GATEWAY_WORKERS > 1) import this module again as __mp_main__.
if __name__ == "__main__":
    main()
