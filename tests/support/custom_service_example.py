"""The custom service of the seeds' "Crear Servicios Personalizados", written exactly as it says.

Only the import path differs: ``apps.queue_system`` is ``project.queue_system`` here.
Registered through the admin by ``tests/services/custom/test_custom_service.py`` as
``tests.support.custom_service_example.MiServicio``.
"""

from project.queue_system.base_service import BaseQueueService


class MiServicio(BaseQueueService):
    def on_start(self):
        """Se ejecuta al iniciar el worker"""
        print("🚀 Mi Servicio iniciado")
        # Conectar a servicios externos, inicializar recursos, etc.

    def on_stop(self):
        """Se ejecuta al detener el worker"""
        print("👋 Mi Servicio detenido")
        # Cerrar conexiones, limpiar recursos, etc.

    def process_event(self, live_event, queue_item):
        """
        Procesa un evento de la cola

        Returns:
            bool: True si se procesó exitosamente, False si falló
        """
        try:
            if live_event.event_type == "GiftEvent":
                # Procesar regalo
                gift_name = live_event.event_data["gift"]["name"]
                user = live_event.user_nickname
                print(f"🎁 {user} envió {gift_name}")
                # Tu lógica aquí...
                return True

            elif live_event.event_type == "CommentEvent":
                # Procesar comentario
                comment = live_event.event_data["comment"]
                user = live_event.user_nickname
                print(f"💬 {user}: {comment}")
                # Tu lógica aquí...
                return True

            return False  # Evento no manejado

        except Exception as e:
            print(f"❌ Error: {e}")
            return False
